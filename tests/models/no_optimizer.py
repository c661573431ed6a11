"""Test model: build(TRAIN) forgets the optimizer, a mistake the launcher must call bad input."""

import tensorflow as tf

import launcher


def build(mode):
    w = tf.compat.v1.get_variable("w", [1])
    return launcher.Model(loss=tf.reduce_sum(tf.square(w)))
