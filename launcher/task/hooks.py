"""The one hook set that every task's MonitoredSession runs: stopping, saving, summaries, progress, and the
model's own hooks.

`build()` is the only place hooks are assembled: common hooks for all tasks, plus chief-only hooks when
the task is the chief, as in `MonitoredTrainingSession`. Order matters at the end of a session: the chief
waits for the workers' last steps before its checkpoint saver writes the final checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence

import tensorflow as tf
from absl import logging

from launcher.cluster import status
from launcher.cluster.errors import UserError
from launcher.cluster.peers import accepts_connections
from launcher.model_api import Model
from launcher.task import ps_release
from launcher.task.recovery import INTERRUPTIONS, Recovery
from launcher.cluster.stop_signals import StopRequest


@dataclasses.dataclass(frozen=True)
class HookConfig:
    is_chief: bool
    model_dir: str
    last_step: int
    save_checkpoint_steps: Optional[int]
    save_checkpoint_secs: Optional[int]
    save_summaries_steps: int
    log_step_count_steps: int
    wait_for_workers_secs: float


class AtTargetHook(tf.compat.v1.train.SessionRunHook):
    """Stops a session that starts at (or past) the target before its first step.

    TensorFlow's StopAtStepHook, which runs beside this one, checks only after a step, so a session starting
    at the target would train once more: a rerun with the same --train_steps must train nothing.
    """

    def __init__(self, last_step: int):
        self._last_step = last_step

    def after_create_session(self, session, coord):
        step = session.run(tf.compat.v1.train.get_global_step())
        if step >= self._last_step:
            logging.info("global step %d is already at the target %d: nothing to train", step, self._last_step)
            coord.request_stop()


class StopRequestHook(tf.compat.v1.train.SessionRunHook):
    """Ends the loop after the step in progress when the task is asked to stop (preemption, Ctrl-C) or to
    finish early (early stopping)."""

    def __init__(self, stop: StopRequest):
        self._stop = stop

    def after_create_session(self, session, coord):
        self._stop.armed = True  # from now on a first stop signal ends the loop after its step

    def after_run(self, run_context, run_values):
        if self._stop.should_stop:
            run_context.request_stop()


class StatusHook(tf.compat.v1.train.SessionRunHook):
    """Reports this task's progress to the launcher (see `status`), and restarts the recovery clock.

    The global step is fetched only with the steps that report (the first, then about once a second): a
    fetch on every step would cost a round trip to the variables' task each time.
    """

    def __init__(self, recovery: Recovery, every_secs: float = 1.0):
        self._recovery = recovery
        self._timer = tf.compat.v1.train.SecondOrStepTimer(every_secs=every_secs)
        self._local_steps = 0
        self._reporting = False
        self._step = None
        self._announce = False

    def begin(self):
        self._global_step = tf.compat.v1.train.get_global_step()

    def after_create_session(self, session, coord):
        self._step = int(session.run(self._global_step))
        self._announce = True

    def _say_session(self) -> None:
        """The `session` line, once per session, at its first step (or its end): not at its creation, where
        a later hook's work may still fail it (the launcher counts a worker with no session as not needed at
        the end)."""
        if self._announce:
            self._announce = False
            status.emit(status.SESSION, step=self._step)

    def before_run(self, run_context):
        self._say_session()
        self._reporting = self._timer.should_trigger_for_step(self._local_steps + 1)
        return tf.compat.v1.train.SessionRunArgs(self._global_step) if self._reporting else None

    def after_run(self, run_context, run_values):
        self._recovery.progressed()
        self._local_steps += 1
        if not self._reporting:
            return
        self._step = int(run_values.results)
        if self._timer.last_triggered_step() is None:
            status.emit(status.FIRST_STEP, step=self._step)
        self._timer.update_last_triggered_step(self._local_steps)
        status.emit(status.PROGRESS, step=self._step, local_steps=self._local_steps)

    def end(self, session):
        self._say_session()  # a session with no step to take (the target was reached before it)
        try:  # the step fetched with the last train op may predate its increment
            self._step = int(session.run(self._global_step))
        except tf.errors.OpError:
            pass  # the variables' task is gone (a stop on preemption): the last step seen will do
        status.emit(status.DONE, step=self._step, local_steps=self._local_steps)


class WorkersDoneHook(tf.compat.v1.train.SessionRunHook):
    """The chief waits for the current workers' last steps before its final save.

    Without the wait, with ps an update applied after the chief's final save would be missing from it;
    without ps the variables live on the chief, and a chief that exited first would leave its workers
    retrying forever. Which workers there are is not fixed at boot (workers join and leave a running
    job, see `membership`), so each worker registers itself, with its address, in a registry where the
    variables live (`queue_device`: ps 0, or the chief without ps; the only task besides itself that a
    worker's session sees) at each session it creates, and deregisters at the end of its loop (done,
    finished early, or stopped). The chief waits for the registered workers only, and stops waiting for
    one whose server has not accepted connections for UNREACHABLE_GRACE_SECS: a worker killed and not
    restarted has nothing left to apply. A registry
    lost with its ps is rebuilt as the workers re-create their sessions.
    """

    def __init__(self, is_chief: bool, own_address: Optional[str], worker_index: int, timeout_secs: float,
                 stop: StopRequest, queue_device: str,
                 current_workers: Callable[[], Sequence[str]] = lambda: ()):
        self._is_chief = is_chief
        self._current_workers = current_workers
        self._own_address = own_address
        self._worker_index = worker_index
        self._timeout_secs = timeout_secs
        self._stop = stop
        self._queue_device = queue_device

    def begin(self):
        with tf.compat.v1.device(self._queue_device):
            registry = registry_table()
            if self._is_chief:
                self._export = tf.raw_ops.LookupTableExportV2(table_handle=registry, Tkeys=tf.int64,
                                                              Tvalues=tf.string)
            else:
                index = tf.constant([self._worker_index], tf.int64)
                self._register = tf.raw_ops.LookupTableInsertV2(
                    table_handle=registry, keys=index, values=tf.constant([self._own_address or ""]))
                self._deregister = tf.raw_ops.LookupTableRemoveV2(table_handle=registry, keys=index)

    def after_create_session(self, session, coord):
        if not self._is_chief:
            session.run(self._register)

    def end(self, session):
        if self._is_chief:
            self._wait_for_workers(session)
            return
        try:
            session.run(self._deregister,
                        options=tf.compat.v1.RunOptions(timeout_in_ms=int(self._timeout_secs * 1000)))
        except tf.errors.OpError as e:
            logging.warning("could not report done (%s)", type(e).__name__)

    def _registered(self, session) -> dict[int, str]:
        keys, values = session.run(self._export, options=tf.compat.v1.RunOptions(timeout_in_ms=10000))
        return {int(k): v.decode("utf-8", "replace") for k, v in zip(keys, values)}

    def _wait_for_workers(self, session) -> None:
        deadline = time.monotonic() + self._timeout_secs
        pending: dict[int, str] = {}
        unreachable_since: dict[int, float] = {}
        # Short waits, so that a stop request (preemption) is honoured while waiting.
        while not self._stop.requested:
            try:
                registered = self._registered(session)
            except tf.errors.OpError as e:
                logging.warning("stopped waiting for workers (%s)", type(e).__name__)
                return
            # A worker that moved (its node was lost) registered its old address: that process is not the
            # worker any more (an orphan on a host declared dead may serve on for a while), and the moved
            # one registers anew once it has a session.
            current = list(self._current_workers())
            registered = {i: a for i, a in registered.items() if not current or (i < len(current) and current[i] == a)}
            now = time.monotonic()
            for index, address in registered.items():
                if accepts_connections(address, timeout_secs=1):
                    unreachable_since.pop(index, None)
                else:
                    unreachable_since.setdefault(index, now)
            # A registered worker whose port is closed was killed: being restarted, it comes back within
            # UNREACHABLE_GRACE_SECS (a worker that leaves on purpose deregisters first).
            pending = {i: a for i, a in registered.items()
                       if now - unreachable_since.get(i, now) < UNREACHABLE_GRACE_SECS}
            if not pending or now >= deadline:
                break
            time.sleep(WAIT_POLL_SECS)
        if pending:
            logging.warning("workers %s did not report done; saving anyway", sorted(pending))
        else:
            logging.info("every current worker is done")


WAIT_POLL_SECS = 0.2
UNREACHABLE_GRACE_SECS = 30.0
REGISTRY_NAME = "launcher_workers"


class InterruptibleHook(tf.compat.v1.train.SessionRunHook):
    """`hook`, whose work at a session's creation makes MonitoredSession create the session again when a
    peer's restart interrupts it.

    A hook's `after_create_session` runs inside the session's creation, after the session creator, and
    MonitoredSession retries a creation only for Aborted and Unavailable errors. A peer (a ps, or a moved
    task whose predecessor the ps still remembered) restarting just then interrupts the hook's `run`
    (`recovery.INTERRUPTIONS`): seen ending a moved worker with exit 1 as its first session was made. As in
    the session creator, that means "try again".
    """

    def __init__(self, hook: tf.compat.v1.train.SessionRunHook, recovery: Recovery):
        self.hook = hook
        self._recovery = recovery

    def begin(self):
        self.hook.begin()

    def after_create_session(self, session, coord):
        try:
            self.hook.after_create_session(session, coord)
        except INTERRUPTIONS as e:
            raise self._recovery.retry(f"session creation interrupted in {type(self.hook).__name__} "
                                       f"({type(e).__name__})") from e

    def before_run(self, run_context):
        return self.hook.before_run(run_context)

    def after_run(self, run_context, run_values):
        self.hook.after_run(run_context, run_values)

    def end(self, session):
        self.hook.end(session)


def registry_table() -> tf.Tensor:
    """The handle of the cluster's worker registry (index -> address), one per variables' task by its name.

    A lookup table, created on first use and never initialised or saved: it is not part of the model, and
    a checkpoint's variables stay the model's own.
    """
    return tf.raw_ops.MutableHashTableV2(shared_name=REGISTRY_NAME, use_node_name_sharing=False,
                                         key_dtype=tf.int64, value_dtype=tf.string, name="workers_registry")


def model_hooks(model: Model, is_chief: bool) -> list[tf.compat.v1.train.SessionRunHook]:
    """The model's own training hooks for this task: all tasks' and, on the chief, the chief's."""
    own = checked(model, "training_hooks")
    return own + checked(model, "training_chief_hooks") if is_chief else own


def checked(model: Model, field: str) -> list[tf.compat.v1.train.SessionRunHook]:
    """`model.<field>`, each one a SessionRunHook (model_api can only check their methods)."""
    hooks = list(getattr(model, field))
    for i, hook in enumerate(hooks):
        if not isinstance(hook, tf.compat.v1.train.SessionRunHook):
            raise UserError(f"launcher.Model: {field}[{i}] ({type(hook).__name__}) is not a "
                            f"tf.compat.v1.train.SessionRunHook")
    return hooks


def build(config: HookConfig, loss: tf.Tensor, scaffold: tf.compat.v1.train.Scaffold, recovery: Recovery,
          stop: StopRequest, own_address: Optional[str], worker_index: int,
          variables_task: str, num_ps: int = 0, own_hooks: Sequence[tf.compat.v1.train.SessionRunHook] = (),
          sync_hook: Optional[tf.compat.v1.train.SessionRunHook] = None,
          current_workers: Callable[[], Sequence[str]] = lambda: ()) -> list[tf.compat.v1.train.SessionRunHook]:
    """The hooks of one task; `variables_task` is where the variables live (see `WorkersDoneHook`).

    `own_hooks` are the model's (see `model_hooks`); `sync_hook` runs a SyncReplicasOptimizer (see
    `sync_replicas`). Both end before the chief waits for its workers and saves: the sync hook's end
    releases the replicas waiting for a token, and a model's hook sees the session while every task is up.
    """
    global_step = tf.compat.v1.train.get_global_step()
    hooks = [
        StopRequestHook(stop),
        AtTargetHook(config.last_step),
        tf.compat.v1.train.StopAtStepHook(last_step=config.last_step),
        tf.compat.v1.train.NanTensorHook(loss),
        tf.compat.v1.train.LoggingTensorHook({"step": global_step, "loss": loss},
                                             every_n_iter=config.log_step_count_steps),
        StatusHook(recovery),
        *([sync_hook] if sync_hook is not None else []),
        *own_hooks,
        WorkersDoneHook(config.is_chief, own_address, worker_index, config.wait_for_workers_secs, stop,
                        variables_task, current_workers),
    ]
    if config.is_chief:
        save_steps = config.save_checkpoint_steps
        hooks += [
            # After WorkersDoneHook: its end() runs first, so the final checkpoint includes every update.
            tf.compat.v1.train.CheckpointSaverHook(
                config.model_dir, save_steps=save_steps,
                save_secs=None if save_steps else config.save_checkpoint_secs, scaffold=scaffold),
            tf.compat.v1.train.SummarySaverHook(save_steps=config.save_summaries_steps,
                                                output_dir=config.model_dir, scaffold=scaffold),
            tf.compat.v1.train.StepCounterHook(every_n_steps=config.log_step_count_steps,
                                               output_dir=config.model_dir),
            # After the CheckpointSaverHook: the ps tasks end only once the final checkpoint is written.
            ps_release.ReleasePsHook(num_ps, config.last_step, stop),
        ]
    return [InterruptibleHook(hook, recovery) for hook in hooks]
