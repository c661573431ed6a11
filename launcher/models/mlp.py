"""A multi-layer perceptron that learns a fixed random "teacher" network.

The data is generated in the graph from the teacher (a seeded NumPy network, identical on every task), so
nothing is downloaded, yet a step costs real compute: a few matrix products of `--mlp_width` units.
Built from tf.compat.v1.layers (dense and batch normalisation), as most graph-mode models are.
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


def _student(x, training: bool):
    # tf.compat.v1.layers name their variables after `name`, so the train and eval graphs share them.
    for layer in range(DEPTH.value):
        x = tf.compat.v1.layers.dense(x, WIDTH.value, use_bias=False, name=f"hidden{layer}")
        # Training normalises by the batch's statistics and updates the moving ones (UPDATE_OPS, which the
        # launcher's train op runs with every step); eval uses the moving ones.
        x = tf.compat.v1.layers.batch_normalization(x, training=training, name=f"batch_norm{layer}")
        x = tf.nn.relu(x)
    return tf.compat.v1.layers.dense(x, 1, name="output")


def build(mode: str) -> launcher.Model:
    teacher = _teacher(common.SEED.value)
    if mode == launcher.EVAL:
        rng = np.random.default_rng(common.SEED.value + 1)
        x = tf.constant(rng.normal(size=(1024, INPUTS)).astype(np.float32))
        y, prediction = teacher(x), _student(x, training=False)
        loss = tf.compat.v1.losses.mean_squared_error(y, prediction)
        return launcher.Model(loss=loss, eval_metrics={
            "mse": tf.compat.v1.metrics.mean_squared_error(y, prediction)})
    x = tf.random.normal([common.value_or(common.BATCH_SIZE, 256), INPUTS])
    loss = tf.compat.v1.losses.mean_squared_error(teacher(x), _student(x, training=True))
    optimizer = tf.compat.v1.train.AdamOptimizer(common.value_or(common.LEARNING_RATE, 1e-3))
    return launcher.Model(loss=loss, optimizer=optimizer)
