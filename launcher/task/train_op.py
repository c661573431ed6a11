"""The train op: one global step per applied update, and never a step past the target.

With asynchronous workers, every task that reads "step < target" may apply one more update, so a plain
`minimize(global_step=...)` overshoots the target by up to the number of workers. Instead each step first
takes a ticket, an atomic increment of the global step on its variable's device; a ticket past the target
gives its increment back and applies nothing. The global step ends at the target exactly, and the chief's
final checkpoint is the model at that step.
"""

import tensorflow as tf

from launcher.model_api import Model


def capped(model: Model, global_step: tf.Variable, last_step: int) -> tf.Tensor:
    """A train op for `model` that stops updating at `last_step`; it yields whether the update applied."""
    if model.optimizer is None:
        raise ValueError("the model's build(TRAIN) returned no optimizer")
    grads_and_vars = model.optimizer.compute_gradients(model.loss)
    ticket = global_step.assign_add(1, use_locking=True, read_value=True)

    def apply():
        with tf.control_dependencies([model.optimizer.apply_gradients(grads_and_vars)]):
            return tf.constant(True)

    def give_back():
        with tf.control_dependencies([global_step.assign_sub(1, use_locking=True)]):
            return tf.constant(False)

    return tf.cond(ticket <= last_step, apply, give_back, name="capped_train_op")
