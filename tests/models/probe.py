"""Test model: the linear model, plus a per-role flag whose value each task writes down, and a way to fail.

--probe: written to <model_dir>/probe-<job>-<index>.txt, so a test can see which task got which value.
--fail_on: a job name; tasks of that job raise in build(), as a bug in user code would.
--step_sleep_secs: slows every step, so a test has time to act mid-training.
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import flags

from launcher.task import flags as task_flags
from launcher.models import linear

PROBE = flags.DEFINE_string("probe", "", "Value to write down.")
FAIL_ON = flags.DEFINE_string("fail_on", "", "Job whose tasks raise in build().")
STEP_SLEEP_SECS = flags.DEFINE_float("step_sleep_secs", 0.0, "Sleep in every step.")


def build(mode):
    job, index = task_flags.JOB_NAME.value, task_flags.TASK_INDEX.value
    if FAIL_ON.value == job:
        raise RuntimeError(f"probe model told to fail on {job}")
    with open(os.path.join(task_flags.MODEL_DIR.value, f"probe-{job}-{index}.txt"), "w") as f:
        f.write(PROBE.value)
    model = linear.build(mode)
    if STEP_SLEEP_SECS.value and mode == "train":
        def sleep():
            time.sleep(STEP_SLEEP_SECS.value)
            return np.float32(0)
        slept = tf.compat.v1.py_func(sleep, [], tf.float32, stateful=True)
        model = type(model)(loss=model.loss + slept, optimizer=model.optimizer)
    return model
