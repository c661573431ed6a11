"""Linear regression y = 3x + 2 + noise: the classic MonitoredSession restore example.

Two scalar variables and random batches made in the graph, so a step is almost free and the run is all
launcher overhead. The eval set is fixed, so its MSE is comparable across checkpoints.
"""

import numpy as np
import tensorflow as tf

import launcher
from launcher.models import common

TRUE_W, TRUE_B, NOISE = 3.0, 2.0, 0.1


def _data(batch_size: int, seed=None):
    x = tf.random.uniform([batch_size, 1], -1.0, 1.0, seed=seed)
    return x, TRUE_W * x + TRUE_B + tf.random.normal([batch_size, 1], stddev=NOISE, seed=seed)


def build(mode: str) -> launcher.Model:
    w = tf.compat.v1.get_variable("w", [1, 1], initializer=tf.compat.v1.zeros_initializer())
    b = tf.compat.v1.get_variable("b", [1], initializer=tf.compat.v1.zeros_initializer())
    if mode == launcher.EVAL:
        x = np.linspace(-1.0, 1.0, 256, dtype=np.float32).reshape(-1, 1)
        y = TRUE_W * x + TRUE_B
        prediction = tf.matmul(tf.constant(x), w) + b
        loss = tf.compat.v1.losses.mean_squared_error(y, prediction)
        return launcher.Model(loss=loss, eval_metrics={
            "mse": tf.compat.v1.metrics.mean_squared_error(y, prediction)})
    x, y = _data(common.value_or(common.BATCH_SIZE, 32))
    loss = tf.compat.v1.losses.mean_squared_error(y, tf.matmul(x, w) + b)
    optimizer = tf.compat.v1.train.GradientDescentOptimizer(common.value_or(common.LEARNING_RATE, 0.1))
    return launcher.Model(loss=loss, optimizer=optimizer)
