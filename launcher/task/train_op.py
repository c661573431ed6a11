"""The train op: one global step per applied update, and never a step past the target.

With asynchronous workers, every task that reads "step < target" may apply one more update, so a plain
`minimize(global_step=...)` overshoots the target by up to the number of workers. Instead each step first
takes a ticket: under a `tf.CriticalSection` that lives on the global step's device (shared by name, so
every task of the cluster locks the same mutex), it reads the global step and increments it only if it
is still below the target. Read and increment are one atomic unit for the whole cluster, so exactly
`last_step` tickets are ever granted and the global step never passes the target. A step whose ticket is
refused applies nothing.

The ticket does not depend on the gradients, so TensorFlow computes both in parallel; the lock is held
only for a read and an add on the variables' task. The decision is taken there too: each gradient travels to
its variable's task as with a plain `minimize`, and is switched on the ticket where it is applied, so a step
costs no round trip more than a plain `minimize` (`scripts/bench_train_op.py --cluster` measures it).

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


def gradients(optimizer, loss: tf.Tensor) -> list:
    """(gradient, variable) pairs of `loss`, for a v1 or a Keras optimizer."""
    if hasattr(optimizer, "compute_gradients"):  # a tf.compat.v1.train.Optimizer
        return optimizer.compute_gradients(loss)
    # A Keras optimizer (tf.compat.v1.keras.optimizers.*) has no compute_gradients in graph mode.
    variables = tf.compat.v1.trainable_variables()
    return [(g, v) for g, v in zip(tf.compat.v1.gradients(loss, variables), variables) if g is not None]


def capped(model: Model, global_step: tf.Variable, last_step: int) -> tf.Operation:
    """A train op for `model` that stops updating at `last_step`.

    An op, not a tensor: a fetched output would travel back from the variables' task on every step.
    """
    if model.optimizer is None:
        raise ValueError("the model's build(TRAIN) returned no optimizer")
    update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    grads_and_vars = [(_beside(grad, var), var) for grad, var in gradients(model.optimizer, model.loss)]
    return apply_if_granted(model.optimizer, grads_and_vars, take_ticket(global_step, last_step), global_step,
                            update_ops, name="train_op")


def apply_if_granted(optimizer, grads_and_vars: list, granted: tf.Tensor, global_step: tf.Variable,
                     control_inputs: list, name: str) -> tf.Operation:
    """`optimizer.apply_gradients(grads_and_vars)`, after `control_inputs`, only where `granted` is true."""

    def apply():
        # Optimizers create their slots under init_scope, outside this branch: initialising and restoring
        # them works as for any other variable. At the root name scope, not the cond's: a Keras optimizer
        # names its slots after the scope it is called in, and checkpoints are restored by name.
        with tf.control_dependencies(control_inputs), tf.compat.v1.name_scope(None):
            applied = optimizer.apply_gradients(grads_and_vars)
        with tf.control_dependencies([applied]):
            return tf.constant(True)

    with tf.compat.v1.device(global_step.device):
        return tf.group(_graph_cond(granted, apply, lambda: tf.constant(False), name="capped"), name=name)


def _beside(grad, var: tf.Variable):
    """`grad`, sent to `var`'s task unconditionally, as a plain `minimize` sends it.

    The cond switches each gradient where the gradient is. Switched on the worker, it would wait there for
    the ticket, one more round trip to the variables' task on every step; switched beside the variable, the
    gradient travels while the ticket is taken. (Not `tf.identity`: Grappler removes an Identity, and the
    Switch moves back to the worker with it; StopGradient stays, and nothing differentiates the apply.)
    """
    if grad is None or isinstance(grad, tf.IndexedSlices):
        return grad  # sparse gradients keep their own placement
    with tf.compat.v1.device(var.device):
        return tf.stop_gradient(grad)


def _graph_cond(pred: tf.Tensor, true_fn, false_fn, name: str) -> tf.Tensor:
    """`tf.cond` built from Switch and Merge ops (control flow v1), whatever the process's default.

    The v2 cond is one `If` op whose branch, the apply on the variables' tasks, runs as a function: extra
    work on every step to run that function's remote part. Switch and Merge are partitioned with the rest of
    the step's graph, so the apply travels in the step's own calls.
    """
    was_v2 = tf.compat.v1.control_flow_v2_enabled()
    tf.compat.v1.disable_control_flow_v2()
    try:
        return tf.compat.v1.cond(pred, true_fn, false_fn, name=name)
    finally:
        if was_v2:
            tf.compat.v1.enable_control_flow_v2()
