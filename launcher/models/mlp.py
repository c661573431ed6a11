"""A multi-layer perceptron that learns a fixed random "teacher" network.

The data is generated in the graph from the teacher (a seeded NumPy network, identical on every task), so
nothing is downloaded, yet a step costs real compute: a few matrix products of `--mlp_width` units.
"""

import numpy as np
import tensorflow as tf
from absl import flags

import launcher
from launcher.models import common

INPUTS = 32
WIDTH = flags.DEFINE_integer("mlp_width", 256, "Units in each hidden layer of the MLP.", lower_bound=1)
DEPTH = flags.DEFINE_integer("mlp_depth", 3, "Hidden layers of the MLP.", lower_bound=1)


def _teacher(seed: int):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(INPUTS, 64)).astype(np.float32) / np.sqrt(INPUTS)
    w2 = rng.normal(size=(64, 1)).astype(np.float32) / 8.0
    return lambda x: tf.matmul(tf.tanh(tf.matmul(x, w1)), w2)


def _dense(x, units: int, name: str):
    # get_variable under a reusing scope: the train and eval graphs name the same variables.
    with tf.compat.v1.variable_scope(name, reuse=tf.compat.v1.AUTO_REUSE):
        w = tf.compat.v1.get_variable("kernel", [x.shape[-1], units],
                                      initializer=tf.compat.v1.glorot_uniform_initializer())
        b = tf.compat.v1.get_variable("bias", [units], initializer=tf.compat.v1.zeros_initializer())
    return tf.matmul(x, w) + b


def _student(x):
    for layer in range(DEPTH.value):
        x = tf.nn.relu(_dense(x, WIDTH.value, f"hidden{layer}"))
    return _dense(x, 1, "output")


def build(mode: str) -> launcher.Model:
    teacher = _teacher(common.SEED.value)
    if mode == launcher.EVAL:
        rng = np.random.default_rng(common.SEED.value + 1)
        x = tf.constant(rng.normal(size=(1024, INPUTS)).astype(np.float32))
        y, prediction = teacher(x), _student(x)
        loss = tf.compat.v1.losses.mean_squared_error(y, prediction)
        return launcher.Model(loss=loss, eval_metrics={
            "mse": tf.compat.v1.metrics.mean_squared_error(y, prediction)})
    x = tf.random.normal([common.value_or(common.BATCH_SIZE, 256), INPUTS])
    loss = tf.compat.v1.losses.mean_squared_error(teacher(x), _student(x))
    optimizer = tf.compat.v1.train.AdamOptimizer(common.value_or(common.LEARNING_RATE, 1e-3))
    return launcher.Model(loss=loss, optimizer=optimizer)
