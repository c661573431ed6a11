"""Synchronous training with `tf.compat.v1.train.SyncReplicasOptimizer`: its train op, its hook, its end.

How TensorFlow's optimizer works: each replica (the chief and every worker) pushes its gradients into one
accumulator per variable, on the variable's task, stamped with the replica's `local_step`; an accumulator
drops gradients older than its own step. Then the replica takes a token from a queue beside the global step
and adopts the token's step. On the chief, an aggregation loop takes the average of the first
`replicas_to_aggregate` gradients of each accumulator, applies it with the wrapped optimizer, increments
the global step and puts `max(total_num_replicas, replicas_to_aggregate)` tokens carrying the new step into
the queue. With backup workers (`replicas_to_aggregate` below the number of replicas), the stragglers'
gradients arrive stamped with an old step and are dropped: the slowest replicas do not set the pace.

What the launcher keeps, and how:
- exactly `--train_steps` global steps, each an aggregated update: the wrapped optimizer's apply takes the
  same ticket as an asynchronous step (`train_op.take_ticket`), once the aggregated gradients are there,
  so an aggregation past the target applies nothing. (No replica pushes a gradient stamped with the target step: a replica holding a token of that
  step has finished its last step, and a session made at the target trains no step; the ticket makes the
  cap hold whatever the replicas do.)
- checkpoints that plain TensorFlow reads: the accumulators and the token queue are not variables, and the
  replica's `sync_rep_local_step` is a local variable, neither saved nor restored;
- no deadlock when a replica restarts: a replica's first push in a new session needs no token (its local
  step starts at the global step), so the chief puts no initial tokens unless `replicas_to_aggregate`
  exceeds the replicas (TensorFlow's rule for how many are needed); extra tokens would only make replicas
  push stale gradients, which are dropped.
- an end: TensorFlow's own hook runs the aggregation as a `QueueRunner`, which closes the token queue when
  the chief's session ends (at the target, on preemption, or when a session is re-created after a peer's
  restart): replicas still waiting for a token fail, and a restarted chief would find the queue closed for
  good. Here the aggregation is a thread that never closes the queue; instead, when the chief is asked to
  stop and when its loop ends, it puts a token for every replica into the queue, so that replicas blocked
  on it (the chief's own step included) finish their step and see the stop or the target. The stop is
  seen from a thread (`signal_wakeup`): a main thread waiting for a token cannot run its signal handler.
  The threads are joined once the session is closed, before the task exits.
- a final checkpoint that holds every update it counts: the aggregation runs beside the chief's loop, so
  after a stop it could apply one more update while the chief saves (a checkpoint whose global step counts
  an update its variables lack was seen). At its end the chief first fences the accumulators (their step
  set beyond any replica's, so every later gradient is dropped and no aggregation completes), then waits
  for an aggregation in flight to return, and only then releases the replicas; the save comes after.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Optional

import tensorflow as tf
from absl import logging

from launcher.cluster.errors import UserError
from launcher.cluster.stop_signals import StopRequest
from launcher.model_api import Model
from launcher.task import signal_wakeup, train_op

SyncReplicasOptimizer = tf.compat.v1.train.SyncReplicasOptimizer
_STOP_POLL_SECS = 0.25
_RELEASE_TIMEOUT_MS = 10_000
# Beyond any step a replica will stamp its gradients with: an accumulator set to it drops them all.
_FENCE_STEP = 2 ** 62
# An aggregation that has its gradients applies them in milliseconds; one still running after this is
# waiting for gradients that the fence now drops.
_IN_FLIGHT_WAIT_SECS = 5.0


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    """The launcher's `--sync_replicas` and `--backup_workers`, as task flags."""

    sync_replicas: bool = False
    backup_workers: int = 0


def optimizer(model: Model, replicas: int, options: SyncOptions) -> Optional[SyncReplicasOptimizer]:
    """The model's own SyncReplicasOptimizer, one wrapping its optimizer (--sync_replicas), or None (async).

    `replicas`: the training tasks of the cluster (chief and workers).
    """
    own = isinstance(model.optimizer, SyncReplicasOptimizer)
    for hook in (*model.training_hooks, *model.training_chief_hooks):
        if type(hook).__name__ == "_SyncReplicasOptimizerHook":  # what make_session_run_hook returns
            raise UserError("launcher.Model: a SyncReplicasOptimizer's make_session_run_hook() is among the "
                            "model's hooks; the launcher runs that hook itself: drop it")
    if own and options.sync_replicas:
        raise UserError("--sync_replicas: the model's optimizer is a SyncReplicasOptimizer already; "
                        "drop --sync_replicas (or give the model a plain optimizer)")
    if options.backup_workers and not options.sync_replicas:
        raise UserError(f"--backup_workers {options.backup_workers} needs --sync_replicas")
    if not 0 <= options.backup_workers < replicas:
        raise UserError(f"--backup_workers {options.backup_workers}: must be below the number of training "
                        f"tasks ({replicas}: the chief and the workers)")
    if own:
        total = model.optimizer._total_num_replicas  # pylint: disable=protected-access
        if total != replicas:
            logging.warning("the model's SyncReplicasOptimizer counts %d replicas (total_num_replicas); the "
                            "cluster has %d training tasks", total, replicas)
        return model.optimizer
    if not options.sync_replicas:
        return None
    return SyncReplicasOptimizer(model.optimizer, replicas_to_aggregate=replicas - options.backup_workers,
                                 total_num_replicas=replicas)


class _CappedApply:
    """The optimizer that a SyncReplicasOptimizer wraps, applying each aggregated update under a ticket.

    A SyncReplicasOptimizer calls `apply_gradients(aggregated, global_step)` of what it wraps; this applies
    the update and advances the global step only while the global step is below the target.
    """

    def __init__(self, inner, last_step: int):
        self.inner = inner
        self._last_step = last_step

    def __getattr__(self, name):  # get_slot, variables and the rest: the wrapped optimizer's
        return getattr(self.inner, name)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        # After the aggregation, unlike an asynchronous step's ticket: the aggregation loop starts its next
        # round at once, and a ticket taken then would count a step whose gradients have not come yet.
        with tf.control_dependencies([g.values if isinstance(g, tf.IndexedSlices) else g
                                      for g, _ in grads_and_vars]):
            granted = train_op.take_ticket(global_step, self._last_step)
        return train_op.apply_if_granted(self.inner, grads_and_vars, granted, global_step, [],
                                         name=name or "aggregated_update")


def train_op_for(sync: SyncReplicasOptimizer, model: Model, global_step: tf.Variable,
                 last_step: int) -> tf.Operation:
    """A replica's step: push its gradients, wait for a token. The chief's aggregation is built with it."""
    if not isinstance(sync._opt, _CappedApply):  # pylint: disable=protected-access
        # The wrapped optimizer is private to TensorFlow's class, which is frozen (deprecated) and has no
        # other way in; it is replaced once, before apply_gradients builds anything from it.
        sync._opt = _CappedApply(sync._opt, last_step)  # pylint: disable=protected-access
    inner = sync._opt.inner  # pylint: disable=protected-access
    # Gradients from the wrapped optimizer: a Keras one has no compute_gradients in graph mode.
    grads_and_vars = train_op.gradients(inner, model.loss)
    push = sync.apply_gradients(grads_and_vars, global_step=global_step)
    sync.ready_for_local_init_op.mark_used()  # TensorFlow's hook checks it; the session creators do here
    # Batch norm's moving statistics come from each replica's own batch: they run with its step, not with
    # the chief's aggregation.
    update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    return tf.group(push, *update_ops, name="train_op")


def initial_tokens(sync: SyncReplicasOptimizer, replicas: int) -> int:
    """Tokens the chief puts in at start: only those needed when a step aggregates more than one gradient
    per replica (TensorFlow's minimum); a replica's first push needs none."""
    return max(0, sync._replicas_to_aggregate - replicas)  # pylint: disable=protected-access


class SyncReplicasHook(tf.compat.v1.train.SessionRunHook):
    """TensorFlow's `make_session_run_hook(is_chief, num_tokens)`, with an aggregation that ends cleanly.

    Every replica sets its local step to the global step when its session is made. The chief also sets
    the accumulators' step, puts the initial tokens in, runs the aggregation in a thread of its own, and
    releases the replicas waiting for a token when it is asked to stop and when its loop ends (see above).
    """

    def __init__(self, sync: SyncReplicasOptimizer, is_chief: bool, replicas: int, stop: StopRequest):
        self._sync = sync
        self._is_chief = is_chief
        self._replicas = replicas
        self._stop = stop
        self._session_count = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._signals: Optional[signal_wakeup.StopSignals] = None
        self._ending = False
        self._idle = threading.Event()  # no aggregation in flight
        self._idle.set()

    def begin(self):
        if not self._is_chief:
            self._init = self._sync.local_step_init_op
            return
        runner = self._sync.get_chief_queue_runner()  # its one op: aggregate, apply, put the next tokens in
        if self._signals is None and threading.current_thread() is threading.main_thread():
            self._signals = signal_wakeup.StopSignals()
        self._init = tf.group(self._sync.chief_init_op,
                              self._sync.get_init_tokens_op(initial_tokens(self._sync, self._replicas)))
        self._aggregate = runner.enqueue_ops[0]
        fences = []
        for accumulator, device in self._sync._accumulator_list:  # pylint: disable=protected-access
            with tf.compat.v1.device(device):
                fences.append(accumulator.set_global_step(tf.constant(_FENCE_STEP, tf.int64)))
        self._fence = tf.group(*fences, name="sync_fence_accumulators")
        global_step = tf.compat.v1.train.get_global_step()
        with tf.compat.v1.device(global_step.device), tf.compat.v1.name_scope(None):
            self._release = runner.queue.enqueue_many(
                [tf.fill([self._replicas], global_step.read_value())], name="sync_release_replicas")

    def after_create_session(self, session, coord):
        session.run(self._init)
        if not self._is_chief:
            return
        with self._lock:
            self._session_count += 1
            generation = self._session_count
        for target, name in ((self._aggregate_loop, "sync-aggregate"), (self._release_on_stop, "sync-release")):
            thread = threading.Thread(target=target, args=(session, coord, generation), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def end(self, session):
        if self._is_chief:
            self._ending = True
            try:
                session.run(self._fence, options=tf.compat.v1.RunOptions(timeout_in_ms=_RELEASE_TIMEOUT_MS))
            except Exception as e:  # the ps gone: no aggregation can apply anything there either
                logging.info("could not fence the accumulators (%s)", type(e).__name__)
            # Only a stop can leave an update in flight: at the target, the ticket lets none apply.
            if self._stop.should_stop and not self._idle.wait(_IN_FLIGHT_WAIT_SECS):
                logging.info("the aggregation in flight waits for gradients that are now dropped")
            self._release_replicas(session)

    def close(self, timeout_secs: float = 10.0) -> None:
        """After the session is closed (which cancels the last aggregation): wait for the threads to end.

        A thread still inside TensorFlow when the interpreter exits would come back into Python during its
        finalization, which unwinds it through TensorFlow's C++ frames and aborts the process (SIGABRT).
        """
        for thread in self._threads:
            thread.join(timeout_secs)
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._threads:
            logging.warning("the synchronous aggregation did not end within %.0f s", timeout_secs)
        if self._signals is not None:
            self._signals.close()
            self._signals = None

    def _current(self, generation: int) -> bool:
        return generation == self._session_count

    def _aggregate_loop(self, session, coord, generation: int) -> None:
        """Aggregate one step after another, for as long as this session is the chief's current one.

        Not registered with the coordinator: at the end the last aggregation waits for gradients that no
        replica will push, and a join would wait for it; the session's close cancels it.
        """
        while self._current(generation) and not coord.should_stop() and not self._ending:
            self._idle.clear()
            try:
                session.run(self._aggregate)
            except Exception as e:  # a closed or re-created session, a peer gone: the session's own concern
                if self._current(generation) and not coord.should_stop() and not self._stop.should_stop:
                    logging.warning("the aggregation of synchronous steps stopped (%s: %s); the session will "
                                    "be re-created", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                    coord.request_stop(e)
                    self._release_replicas(session)  # the chief's own step is waiting for a token
                return
            finally:
                self._idle.set()

    def _release_on_stop(self, session, coord, generation: int) -> None:
        """Release the replicas once this task is asked to stop: its own step may be one of those waiting,
        and then its signal handler cannot run (see `signal_wakeup`)."""
        while self._current(generation) and not coord.should_stop():
            signalled = self._signals.wait(_STOP_POLL_SECS) if self._signals else coord.wait_for_stop(_STOP_POLL_SECS)
            if signalled or self._stop.should_stop:
                logging.info("asked to stop: releasing the replicas waiting for a token")
                self._release_replicas(session)
                return

    def _release_replicas(self, session) -> None:
        try:
            session.run(self._release, options=tf.compat.v1.RunOptions(timeout_in_ms=_RELEASE_TIMEOUT_MS))
        except Exception as e:  # the session is closing, or the ps gone: nobody is left to release there
            logging.info("could not release the replicas (%s)", type(e).__name__)
