"""Test model: batch normalisation in front of a linear regression, built with tf.compat.v1.layers.

The inputs have mean 3 and variance 4 in every feature, so after training the layer's moving mean and
variance (updated only by UPDATE_OPS) must have moved from 0 and 1 to about 3 and 4; eval runs the layer
in inference mode, on those moving statistics, and is good only if they moved.
"""

import numpy as np
import tensorflow as tf

import launcher

MEAN, STDDEV, FEATURES = 3.0, 2.0, 4
WEIGHTS = np.array([[1.0], [-2.0], [0.5], [1.5]], dtype=np.float32)
MOMENTUM = 0.9  # the moving statistics settle within a few dozen steps, not hundreds


def _data(batch: int, seed=None):
    x = tf.random.normal([batch, FEATURES], mean=MEAN, stddev=STDDEV, seed=seed)
    return x, tf.matmul(x, WEIGHTS) + 1.0


def _predict(x, training: bool):
    x = tf.compat.v1.layers.batch_normalization(x, training=training, momentum=MOMENTUM, name="batch_norm")
    return tf.compat.v1.layers.dense(x, 1, name="linear")


def build(mode):
    if mode == launcher.EVAL:
        x, y = _data(1024, seed=1)
        prediction = _predict(x, training=False)
        return launcher.Model(loss=tf.compat.v1.losses.mean_squared_error(y, prediction), eval_metrics={
            "mse": tf.compat.v1.metrics.mean_squared_error(y, prediction)})
    x, y = _data(64)
    loss = tf.compat.v1.losses.mean_squared_error(y, _predict(x, training=True))
    return launcher.Model(loss=loss, optimizer=tf.compat.v1.train.AdamOptimizer(0.1))
