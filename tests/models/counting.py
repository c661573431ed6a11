"""Test model: a tiny regression whose optimizer counts the updates it applies, in a variable of its own.

After a run, the checkpoint's `applied_updates` says how many updates really reached the variables, to
compare with the global step. --optimizer picks the optimizer, so that those creating slots lazily (Adam,
Momentum, a Keras one) are put through the launcher's capped train op.
"""

import tensorflow as tf
from absl import flags

import launcher

OPTIMIZER = flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam", "momentum", "keras_adam"],
                              "The optimizer to count the updates of.")


class CountingOptimizer:
    """Delegates to `inner`; every applied update also adds one to `counter`."""

    def __init__(self, inner, counter: tf.Variable):
        self._inner = inner
        self._counter = counter

    def __getattr__(self, name):  # compute_gradients and the rest: whatever the inner optimizer has
        return getattr(self._inner, name)

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        applied = self._inner.apply_gradients(grads_and_vars, *args, **kwargs)
        with tf.control_dependencies([applied]):
            return self._counter.assign_add(1, read_value=False)


def _optimizer():
    if OPTIMIZER.value == "adam":
        return tf.compat.v1.train.AdamOptimizer(0.05)
    if OPTIMIZER.value == "momentum":
        return tf.compat.v1.train.MomentumOptimizer(0.05, momentum=0.9)
    if OPTIMIZER.value == "keras_adam":
        return tf.compat.v1.keras.optimizers.Adam(0.05)
    return tf.compat.v1.train.GradientDescentOptimizer(0.05)


def regression():
    """The model's graph: (w, b, loss) of y = 3x + 2 fitted on random batches."""
    x = tf.random.normal([32, 1])
    w = tf.compat.v1.get_variable("w", [1, 1], initializer=tf.compat.v1.zeros_initializer())
    b = tf.compat.v1.get_variable("b", [1], initializer=tf.compat.v1.zeros_initializer())
    return w, b, tf.compat.v1.losses.mean_squared_error(3.0 * x + 2.0, tf.matmul(x, w) + b)


def build(mode):
    _, _, loss = regression()
    if mode == launcher.EVAL:
        return launcher.Model(loss=loss)
    counter = tf.compat.v1.get_variable("applied_updates", [], tf.int64, trainable=False,
                                        initializer=tf.compat.v1.zeros_initializer())
    return launcher.Model(loss=loss, optimizer=CountingOptimizer(_optimizer(), counter))
