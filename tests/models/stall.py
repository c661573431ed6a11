"""Test model: the linear model whose step stalls once, as a step whose RPC gets no answer would.

--stall_at_step: the task's own step (counted per process) that stalls; --stall_secs: for how long. The
stall is a sleep in the step's input, so it ends: TensorFlow's step deadline (RunOptions.timeout_in_ms) is
what a test sees act on it first.
"""

import time

import numpy as np
import tensorflow as tf
from absl import flags

from launcher.models import linear

STALL_AT_STEP = flags.DEFINE_integer("stall_at_step", 30, "The task's own step that stalls, once.")
STALL_SECS = flags.DEFINE_float("stall_secs", 20.0, "How long that step stalls.")


def build(mode):
    model = linear.build(mode)
    if mode != "train":
        return model
    steps = [0]

    def next_input():
        steps[0] += 1
        if steps[0] == STALL_AT_STEP.value:
            time.sleep(STALL_SECS.value)
        return np.float32(0)

    extra = tf.compat.v1.py_func(next_input, [], tf.float32, stateful=True)
    return type(model)(loss=model.loss + extra, optimizer=model.optimizer)
