"""Test model: the linear model, whose serving signature is wrong (its input is a constant, not a
placeholder): a chief that exports must refuse it before training anything."""

import tensorflow as tf

import launcher
from launcher.models import linear


def build(mode):
    if mode == launcher.PREDICT:
        x = tf.constant([[1.0]], name="x")
        return launcher.Model(serving=launcher.Serving(inputs={"x": x}, outputs={"y": 2 * x}))
    return linear.build(mode)
