"""Test model: the linear model, with an eval set of 5 batches of different sizes read as Estimator users
read input (a tf.data pipeline through a one-shot iterator), and a serving signature.

Every metric is known exactly for given variables: `label_mean` over the whole set is a fixed number that no
single batch has, and `mse` follows from the checkpoint's w and b (see eval_batches_data). --slow_steps_secs slows training so that
the evaluator sees several checkpoints.
"""

import time

import numpy as np
import tensorflow as tf
from absl import flags

import launcher
from launcher.models import common, linear
from models import eval_batches_data

SLOW_STEPS_SECS = flags.DEFINE_float("slow_steps_secs", 0.0, "Sleep in every training step.")


def _eval_input():
    dataset = None
    for x, y in eval_batches_data.batches():
        batch = tf.data.Dataset.from_tensors((x, y))
        dataset = batch if dataset is None else dataset.concatenate(batch)
    return tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()


def _variables():
    with tf.compat.v1.variable_scope("", reuse=tf.compat.v1.AUTO_REUSE):
        return (tf.compat.v1.get_variable("w", [1, 1], initializer=tf.compat.v1.zeros_initializer()),
                tf.compat.v1.get_variable("b", [1], initializer=tf.compat.v1.zeros_initializer()))


def build(mode):
    if mode == launcher.PREDICT:
        w, b = _variables()
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        return launcher.Model(serving=launcher.Serving(inputs={"x": x}, outputs={"y": tf.matmul(x, w) + b}))
    if mode == launcher.EVAL:
        w, b = _variables()
        x, y = _eval_input()
        prediction = tf.matmul(x, w) + b
        return launcher.Model(loss=tf.compat.v1.losses.mean_squared_error(y, prediction), eval_metrics={
            "mse": tf.compat.v1.metrics.mean_squared_error(y, prediction),
            "label_mean": tf.compat.v1.metrics.mean(y)})
    w, b = _variables()
    x = tf.random.uniform([32, 1], -1.0, 1.0)
    if SLOW_STEPS_SECS.value:
        def sleep():
            time.sleep(SLOW_STEPS_SECS.value)
            return np.float32(0)
        # On the input, so that the train op (which needs only gradients) cannot skip it.
        x = x + tf.compat.v1.py_func(sleep, [], tf.float32, stateful=True)
    loss = tf.compat.v1.losses.mean_squared_error(linear.TRUE_W * x + linear.TRUE_B, tf.matmul(x, w) + b)
    return launcher.Model(loss=loss, optimizer=tf.compat.v1.train.GradientDescentOptimizer(
        common.value_or(common.LEARNING_RATE, 0.1)))
