"""The training loop of a chief or a worker: between-graph replication with a MonitoredSession."""

from __future__ import annotations

import time
from typing import Callable

import tensorflow as tf
from absl import logging

from launcher.task import hooks as hooks_lib
from launcher.task import session_creators, sync_replicas, train_op
from launcher.model_api import TRAIN, Model
from launcher.task.membership import Membership
from launcher.task.recovery import INTERRUPTIONS, Recovery

# What a peer's restart or loss does to the end of a session (see `train`).
END_INTERRUPTIONS = (tf.errors.UnavailableError, tf.errors.AbortedError, *INTERRUPTIONS)
from launcher.task.step_deadline import StepDeadline
from launcher.cluster.spec import CHIEF, PS, WORKER, TaskId
from launcher.cluster.stop_signals import StopRequest


def device_setter(task: TaskId, cluster: dict):
    """Variables on the ps tasks (round robin), or on the chief when there are none; ops on this task."""
    worker_device = f"/job:{task.job}/task:{task.index}"
    if cluster.get(PS):
        return tf.compat.v1.train.replica_device_setter(worker_device=worker_device, cluster=cluster)
    return tf.compat.v1.train.replica_device_setter(ps_tasks=1, ps_device="/job:chief/task:0",
                                                    worker_device=worker_device)


def variables_task(cluster: dict) -> str:
    """The task that holds the global step and the cluster's shared queues: ps 0, or the chief without ps."""
    return "/job:ps/task:0" if cluster.get(PS) else "/job:chief/task:0"


def train(task: TaskId, membership: Membership, master: str, build: Callable[[str], Model],
          hook_config: hooks_lib.HookConfig, *, max_to_keep: int, max_wait_secs: float,
          recovery_wait_secs: float, recovery_deadline_secs: float, stop: StopRequest,
          step_timeout_secs: float = 0, sync_options: sync_replicas.SyncOptions = sync_replicas.SyncOptions()) -> None:
    """Train until the global step reaches `hook_config.last_step`, or until `stop` is requested.

    A step that outlives its deadline (see `step_deadline`) is cancelled and its session re-created,
    as after a peer's restart; steps that keep stalling end the task within `recovery_deadline_secs`.
    A model whose optimizer is a SyncReplicasOptimizer, or any with `sync_options.sync_replicas`, trains
    synchronously (see `sync_replicas`).
    Each session is made with the live cluster (`membership`): each task sees only where the variables
    live and itself, so a dead or restarting worker never blocks another's session, and with ps neither
    does the chief; a ps that moved is found at its new address when the session is re-created.
    """
    cluster = membership.cluster()
    replicas = len(cluster.get(CHIEF, [])) + len(cluster.get(WORKER, []))
    with tf.Graph().as_default():
        with tf.compat.v1.device(device_setter(task, cluster)):
            global_step = tf.compat.v1.train.get_or_create_global_step()
            model = build(TRAIN)
            sync = sync_replicas.optimizer(model, replicas, sync_options)
            if sync is None:
                step_op = train_op.capped(model, global_step, hook_config.last_step)
            else:
                step_op = sync_replicas.train_op_for(sync, model, global_step, hook_config.last_step)
                logging.info("synchronous training: each step aggregates %d of %d replicas' gradients",
                             sync._replicas_to_aggregate, replicas)  # pylint: disable=protected-access
        tf.compat.v1.summary.scalar("loss", model.loss)
        # Only the chief saves and restores. A worker's Scaffold would build a saver all the same (its
        # save and restore ops on every ps): an empty one costs nothing, where that took 0.04 s of a
        # restarted worker's start.
        saver = (tf.compat.v1.train.Saver(max_to_keep=max_to_keep, sharded=True, save_relative_paths=True)
                 if hook_config.is_chief else tf.compat.v1.train.Saver(var_list=[], allow_empty=True))
        scaffold = tf.compat.v1.train.Scaffold(saver=saver)
        recovery = Recovery(recovery_deadline_secs)
        config, peers = membership.session_config, membership.variables_peers
        if hook_config.is_chief:
            # Before any hook writes to the model directory: a mismatch must leave it untouched.
            choice = session_creators.choose_checkpoint(hook_config.model_dir)
            creator = session_creators.chief(scaffold, master, config, hook_config.model_dir, recovery, choice,
                                             peers, variables_on_ps=bool(cluster.get(PS)))
        else:
            creator = session_creators.worker(scaffold, master, config, max_wait_secs, recovery_wait_secs,
                                              recovery, peers, stop)
        sync_hook = None if sync is None else sync_replicas.SyncReplicasHook(sync, hook_config.is_chief,
                                                                             replicas, stop)
        task_hooks = hooks_lib.build(
            hook_config, model.loss, scaffold, recovery, stop, membership.own_address, task.index,
            variables_task(cluster), num_ps=len(cluster.get(PS, [])),
            own_hooks=hooks_lib.model_hooks(model, hook_config.is_chief),
            sync_hook=sync_hook, current_workers=lambda: membership.cluster().get(WORKER, []))

        deadline = StepDeadline(step_timeout_secs)

        def step_fn(step_context):
            if membership.variables_moved():
                # Its old address may still answer (see Membership.variables_moved): leave that session.
                message = "the tasks that hold the variables moved; re-creating the session at their new addresses"
                logging.warning("%s", message)
                raise recovery.retry(message)
            timeout = deadline.secs()
            started = time.monotonic()
            try:
                step_context.run_with_hooks(step_op, options=tf.compat.v1.RunOptions(timeout_in_ms=int(timeout * 1000)))
            except tf.errors.DeadlineExceededError as e:
                if not timeout:
                    raise  # not ours: the model's own
                message = f"a step had no answer within {timeout:.0f}s (--step_timeout_secs): cancelled; " \
                          "re-creating the session"
                logging.warning("%s", message)
                raise recovery.retry(message) from e  # back-off, and an end to a stall that keeps coming back
            except INTERRUPTIONS as e:
                if stop.requested:
                    raise  # ours: the session closes on a stop
                # A peer that restarts interrupts a step in flight (see recovery.INTERRUPTIONS).
                message = f"a step was interrupted by a peer ({type(e).__name__}); re-creating the session"
                logging.warning("%s", message)
                raise recovery.retry(message) from e
            deadline.took(time.monotonic() - started)

        try:
            while True:
                try:
                    with tf.compat.v1.train.MonitoredSession(session_creator=creator, hooks=task_hooks) as session:
                        while not session.should_stop():
                            session.run_step_fn(step_fn)
                    return
                except END_INTERRUPTIONS as e:
                    if stop.requested:
                        raise  # ours: the session closes on a stop
                    # MonitoredSession recovers from these in a step or a session's creation, never in the
                    # hooks' end(): that is where the chief waits for its workers and saves the final
                    # checkpoint, and a ps lost just then (its host's death declared as training ended) would
                    # end the chief with exit 1 and no final checkpoint. A new session finishes the run: the
                    # chief restores the newest checkpoint into a ps that lost its variables, trains again up
                    # to the target, and saves. The same hooks go on (their counts and timers with them):
                    # MonitoredSession's close has unfinalised the graph, so their begin() may add ops again.
                    message = f"the end of training was interrupted by a peer ({type(e).__name__}); " \
                              "a new session finishes it"
                    logging.warning("%s", message)
                    recovery.failed(e)  # back-off, and an end to a cluster that never comes back
        finally:
            if sync_hook is not None:
                sync_hook.close()
