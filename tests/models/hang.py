"""Test model: the linear model, with ways to make one task hang or lag on purpose.

--step_sleep_secs: slows every step of every task, so a test has time to act mid-training.
--block_input_on: a task name ("worker:0") whose input blocks forever after --block_after_steps of its own
  steps, once per model directory (a marker file), as a deadlocked input pipeline would.
--slow_task / --slow_factor: that task's steps sleep `slow_factor` times longer (a straggler).
--fail_on: a task name whose build() raises.
--grow_on: a task name whose memory grows 8 MiB a step, up to 512 MiB, once <model_dir>/grow exists.
"""

import os
import threading
import time

import numpy as np
import tensorflow as tf
from absl import flags

from launcher.cluster import tf_config
from launcher.models import linear
from launcher.task import flags as task_flags

STEP_SLEEP_SECS = flags.DEFINE_float("step_sleep_secs", 0.0, "Sleep in every step.")
BLOCK_INPUT_ON = flags.DEFINE_string("block_input_on", "", "Task whose input blocks forever (once).")
BLOCK_AFTER_STEPS = flags.DEFINE_integer("block_after_steps", 20, "Own steps before the input blocks.")
SLOW_TASK = flags.DEFINE_string("slow_task", "", "Task whose steps sleep longer.")
SLOW_FACTOR = flags.DEFINE_float("slow_factor", 4.0, "How much longer that task sleeps.")
GROW_ON = flags.DEFINE_string("grow_on", "", "Task whose memory grows by 8 MiB a step (up to 512 MiB) once "
                              "<model_dir>/grow exists.")
FAIL_ON = flags.DEFINE_string("fail_on", "", "Task that raises in build(), as a bug in user code would.")


def blocked_input(marker: str) -> None:
    """Never returns: what a test looks for in the stacks of the hung task."""
    open(marker, "w").close()
    threading.Event().wait()


def build(mode):
    task, _ = tf_config.identity(os.environ)
    if FAIL_ON.value == task.name:
        raise RuntimeError(f"hang model told to fail on {task}")
    model = linear.build(mode)
    if mode != "train":
        return model
    sleep_secs = STEP_SLEEP_SECS.value * (SLOW_FACTOR.value if SLOW_TASK.value == task.name else 1.0)
    marker = os.path.join(task_flags.MODEL_DIR.value, f"blocked-{task.job}-{task.index}")
    blocks = BLOCK_INPUT_ON.value == task.name and not os.path.exists(marker)
    steps = [0]
    hoard = []
    grow_file = os.path.join(task_flags.MODEL_DIR.value, "grow") if GROW_ON.value == task.name else None

    def next_input():
        steps[0] += 1
        if blocks and steps[0] > BLOCK_AFTER_STEPS.value:
            blocked_input(marker)
        if grow_file and len(hoard) < 64 and os.path.exists(grow_file):
            hoard.append(np.ones(8 << 20, dtype=np.uint8))  # touched, so really resident
        if sleep_secs:
            time.sleep(sleep_secs)
        return np.float32(0)

    extra = tf.compat.v1.py_func(next_input, [], tf.float32, stateful=True)
    return type(model)(loss=model.loss + extra, optimizer=model.optimizer)
