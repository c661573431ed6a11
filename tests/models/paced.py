"""Test model: the linear model at a set pace (--pace_secs per step), so a test can act mid-training.
Needs nothing but the task's flags, so it runs the same under any backend."""

import time

import numpy as np
import tensorflow as tf
from absl import flags

from launcher.models import linear

PACE_SECS = flags.DEFINE_float("pace_secs", 0.0, "Sleep in every training step.")


def build(mode):
    model = linear.build(mode)
    if PACE_SECS.value and mode == "train":
        def sleep():
            time.sleep(PACE_SECS.value)
            return np.float32(0)
        slept = tf.compat.v1.py_func(sleep, [], tf.float32, stateful=True)
        model = type(model)(loss=model.loss + slept, optimizer=model.optimizer)
    return model
