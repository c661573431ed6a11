"""Test model: the linear model, whose eval metric `plateau` (higher is better) stops improving at step 200.

Training steps are slowed (10 ms) so that the evaluator sees checkpoints as they come. It can be served:
`x` in, `y` out.
"""

import time

import numpy as np
import tensorflow as tf

import launcher
from launcher.models import linear

PLATEAU_STEP = 200


def build(mode):
    if mode == launcher.PREDICT:
        w = tf.compat.v1.get_variable("w", [1, 1])
        b = tf.compat.v1.get_variable("b", [1])
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        return launcher.Model(serving=launcher.Serving(inputs={"x": x}, outputs={"y": tf.matmul(x, w) + b}))
    model = linear.build(mode)
    step = tf.cast(tf.compat.v1.train.get_or_create_global_step(), tf.float32)
    if mode == launcher.EVAL:
        plateau = tf.compat.v1.metrics.mean(tf.minimum(step, PLATEAU_STEP))
        return launcher.Model(loss=model.loss, eval_metrics={**model.eval_metrics, "plateau": plateau})
    if mode == launcher.TRAIN:
        slept = tf.compat.v1.py_func(lambda: (time.sleep(0.01), np.float32(0))[1], [], tf.float32, stateful=True)
        return launcher.Model(loss=model.loss + slept, optimizer=model.optimizer)
    return model
