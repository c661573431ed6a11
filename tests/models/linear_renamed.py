"""Test model: the linear model after an edit that no longer matches its checkpoints.

`w` is renamed to `weight`, `b` gets a different shape, and a variable `extra` is new.
"""

import tensorflow as tf

import launcher


def build(mode):
    weight = tf.compat.v1.get_variable("weight", [1, 1])
    b = tf.compat.v1.get_variable("b", [2])
    extra = tf.compat.v1.get_variable("extra", [3])
    x = tf.random.uniform([32, 1])
    loss = tf.reduce_mean(tf.square(tf.matmul(x, weight) + b[0] + tf.reduce_sum(extra) - 3 * x))
    return launcher.Model(loss=loss, optimizer=tf.compat.v1.train.GradientDescentOptimizer(0.1))
