"""Test model: the linear model, plus a per-role flag whose value each task writes down, and ways to misbehave.

--probe: written to <model_dir>/probe-<job>-<index>.txt, so a test can see which task got which value.
--fail_on: a job name; tasks of that job raise in build(), as a bug in user code would, after leaving a file
  failed-<job>-<index> in the model directory.
--fail_once_on: a job name; tasks of that job raise in build() on their first attempt only (a marker file in
  the model directory remembers it), so a restarted task trains.
--ignore_sigterm: the task ignores SIGTERM once its flags are parsed, as a task stuck in native code would.
--step_sleep_secs: slows every step, so a test has time to act mid-training.
--start_after: a file name; build() waits until that file exists in the model directory (e.g. failed-evaluator-0),
  so that a test can order events across tasks.

The task's identity comes from TF_CONFIG, where every backend puts it.
"""

import json
import os
import signal
import time

import numpy as np
import tensorflow as tf
from absl import flags

from launcher.task import flags as task_flags
from launcher.models import linear

PROBE = flags.DEFINE_string("probe", "", "Value to write down.")
FAIL_ON = flags.DEFINE_string("fail_on", "", "Job whose tasks raise in build().")
FAIL_ONCE_ON = flags.DEFINE_string("fail_once_on", "", "Job whose tasks raise in build() on their first attempt.")
IGNORE_SIGTERM = flags.DEFINE_bool("ignore_sigterm", False, "Ignore SIGTERM.")
STEP_SLEEP_SECS = flags.DEFINE_float("step_sleep_secs", 0.0, "Sleep in every step.")
START_AFTER = flags.DEFINE_string("start_after", "", "File in the model directory that build() waits for.")


def _identity():
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    return task["type"], int(task.get("index", 0))


def build(mode):
    job, index = _identity()
    model_dir = task_flags.MODEL_DIR.value
    if IGNORE_SIGTERM.value:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if START_AFTER.value:
        while not os.path.exists(os.path.join(model_dir, START_AFTER.value)):
            time.sleep(0.1)
    if FAIL_ON.value == job:
        open(os.path.join(model_dir, f"failed-{job}-{index}"), "w").close()
        raise RuntimeError(f"probe model told to fail on {job}")
    if FAIL_ONCE_ON.value == job and mode == "train":  # not the chief's serving graph (PREDICT), built first
        marker = os.path.join(model_dir, f"failed-once-{job}-{index}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError(f"probe model told to fail once on {job}")
    with open(os.path.join(model_dir, f"probe-{job}-{index}.txt"), "w") as f:
        f.write(PROBE.value)
    model = linear.build(mode)
    if STEP_SLEEP_SECS.value and mode == "train":
        def sleep():
            time.sleep(STEP_SLEEP_SECS.value)
            return np.float32(0)
        slept = tf.compat.v1.py_func(sleep, [], tf.float32, stateful=True)
        model = type(model)(loss=model.loss + slept, optimizer=model.optimizer)
    return model
