"""The train op: one global step per applied update, and never a step past the target.

With asynchronous workers, every task that reads "step < target" may apply one more update, so a plain
`minimize(global_step=...)` overshoots the target by up to the number of workers. Instead each step first
takes a ticket: under a `tf.CriticalSection` that lives on the global step's device (shared by name, so
every task of the cluster locks the same mutex), it reads the global step and increments it only if it
is still below the target. Read and increment are one atomic unit for the whole cluster, so exactly
`last_step` tickets are ever granted and the global step never passes the target. A step whose ticket is
refused applies nothing.

The ticket does not depend on the gradients, so TensorFlow computes both in parallel; the lock is held
only for a read and an add on the variables' task.

`tf.compat.v1.GraphKeys.UPDATE_OPS` (batch norm's moving mean and variance, for instance) are control
dependencies of the apply, as in Estimator, so they run with every step.
"""

from __future__ import annotations

import tensorflow as tf

from launcher.model_api import Model

TICKET_SECTION = "launcher_global_step_ticket"
# Where tf.CriticalSection records itself for its graph-construction checks; a checkpoint's meta graph
# cannot serialise these entries and warns at every save.
_SECTION_COLLECTIONS = ("critical_sections", "critical_section_executions")


def take_ticket(global_step: tf.Variable, last_step: int) -> tf.Tensor:
    """A bool tensor: whether this step may apply its update (the global step was below `last_step`)."""
    recorded = {key: len(tf.compat.v1.get_collection_ref(key)) for key in _SECTION_COLLECTIONS}
    # Everything on the global step's device: the lock, read and add run in one place, without round trips.
    with tf.compat.v1.device(global_step.device):
        section = tf.CriticalSection(shared_name=TICKET_SECTION, name="ticket_section")

        def grant():
            granted = global_step.read_value() < last_step
            add = global_step.assign_add(tf.cast(granted, global_step.dtype), read_value=False)
            with tf.control_dependencies([add]):
                return tf.identity(granted)

        granted = section.execute(grant, name="ticket")
    for key, count in recorded.items():
        del tf.compat.v1.get_collection_ref(key)[count:]
    return granted


def _gradients(model: Model) -> list:
    if hasattr(model.optimizer, "compute_gradients"):  # a tf.compat.v1.train.Optimizer
        return model.optimizer.compute_gradients(model.loss)
    # A Keras optimizer (tf.compat.v1.keras.optimizers.*) has no compute_gradients in graph mode.
    variables = tf.compat.v1.trainable_variables()
    return [(g, v) for g, v in zip(tf.compat.v1.gradients(model.loss, variables), variables) if g is not None]


def capped(model: Model, global_step: tf.Variable, last_step: int) -> tf.Tensor:
    """A train op for `model` that stops updating at `last_step`; it yields whether the update applied."""
    if model.optimizer is None:
        raise ValueError("the model's build(TRAIN) returned no optimizer")
    grads_and_vars = _gradients(model)
    update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    granted = take_ticket(global_step, last_step)

    def apply():
        # Optimizers create their slots under init_scope, outside this branch: initialising and restoring
        # them works as for any other variable.
        with tf.control_dependencies(update_ops):
            applied = model.optimizer.apply_gradients(grads_and_vars)
        with tf.control_dependencies([applied]):
            return tf.constant(True)

    return tf.cond(granted, apply, lambda: tf.constant(False), name="capped_train_op")

