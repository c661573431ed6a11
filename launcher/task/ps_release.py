"""The end of a ps task: it exits 0 once the chief has saved the final checkpoint, instead of serving forever.

Without a supervisor (TF_CONFIG commands run by hand or by another scheduler, a Kubeflow TFJob) nobody
would stop a ps, so the chief tells each ps itself: after its final save it puts a token into a queue that
lives on that ps, and the ps, which waits on that queue, ends. The chief does so only when training is over
(the target reached, or finished early by early stopping): a chief stopped by preemption leaves its ps serving, since a restarted chief needs their
variables. A ps whose chief stays unreachable for `--ps_orphan_secs` gives up with exit code 1, so that a
lost message never leaves a ps running forever.

A stop signal does not end a ps while its chief may still be saving through it: a scheduler that signals
every task at once (Slurm's `scancel`, a deleted TFJob) reaches the ps and the chief in the same instant, and
the chief's save at the step it reached reads the variables the ps holds. So the ps serves on until the
chief no longer accepts connections, for at most `STOP_GRACE_SECS` (the scheduler's own kill wait: Slurm's
`KillWait` and Kubernetes' termination grace are 30 s by default), then exits with the signal's code. The
launcher's own stop waves signal the ps only once the chief has ended, so there the ps ends at once.

Kept apart from the workers' done reports (`hooks.WorkersDoneHook`): those travel the other way, to the
chief, before its final save; this message follows that save.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Optional

import tensorflow as tf
from absl import logging

from launcher.cluster import exit_codes
from launcher.cluster.peers import accepts_connections
from launcher.cluster.spec import TaskId
from launcher.cluster.stop_signals import STOP_SIGNALS, StopRequest
from launcher.task.membership import Membership

QUEUE_NAME = "launcher_ps_release"
# Both ends declare the queue, and a shared queue must be declared alike; room for a token per chief run
# (a rerun at the target releases again) so that an enqueue never blocks.
CAPACITY = 16
ENQUEUE_TIMEOUT_SECS = 10.0
POLL_SECS = 1.0
STOP_GRACE_SECS = 30.0
STOP_POLL_SECS = 0.2


def _queue(ps_index: int) -> tf.queue.FIFOQueue:
    with tf.compat.v1.device(f"/job:ps/task:{ps_index}"):
        return tf.queue.FIFOQueue(CAPACITY, tf.int32, shapes=[], shared_name=QUEUE_NAME,
                                  name=f"ps_release_{ps_index}")


class ReleasePsHook(tf.compat.v1.train.SessionRunHook):
    """The chief's side: after the final checkpoint, tell every ps that training is over.

    Must come after the CheckpointSaverHook in the hook list: hooks end in list order, and that hook's
    end() writes the final checkpoint, which must exist before any ps lets its variables go.
    """

    def __init__(self, num_ps: int, last_step: int, stop: StopRequest):
        self._num_ps = num_ps
        self._last_step = last_step
        self._stop = stop

    def begin(self):
        self._global_step = tf.compat.v1.train.get_global_step()
        self._enqueues = [_queue(i).enqueue(0) for i in range(self._num_ps)]

    def end(self, session):
        if self._stop.requested:
            return  # preempted or interrupted: the ps keep the variables for the chief that comes back
        try:
            step = int(session.run(self._global_step))
        except tf.errors.OpError as e:
            logging.warning("could not read the global step to release the ps tasks (%s)", type(e).__name__)
            return
        if step < self._last_step and not self._stop.finishing:
            return  # not the end of training (finishing: early stopping ended it before the target)
        options = tf.compat.v1.RunOptions(timeout_in_ms=int(ENQUEUE_TIMEOUT_SECS * 1000))
        for index, enqueue in enumerate(self._enqueues):
            try:
                session.run(enqueue, options=options)
            except tf.errors.OpError as e:
                logging.warning("could not tell ps:%d that training is over (%s); it ends by itself after "
                                "--ps_orphan_secs", index, type(e).__name__)
        logging.info("told %d ps task(s) that training is over at step %d", self._num_ps, step)


def serve_until_released(server: tf.distribute.Server, task: TaskId, membership: Membership,
                         orphan_secs: float, stop: StopRequest) -> int:
    """The ps's side: serve until the chief's token arrives (exit 0), the chief has been unreachable for
    `orphan_secs` (exit 1), or a stop signal (its exit code).

    The dequeue blocks in a thread of its own: a dequeue that timed out every second, so that the main
    thread could handle signals, would log TensorFlow's cancellation warnings every second. The main thread
    waits in short steps (signal handlers run between them) and closes the queue on its way out, which ends
    the blocked dequeue. The chief is looked for at its current address (`membership`): it may move.
    """
    with tf.Graph().as_default():
        queue = _queue(task.index)
        dequeue, close = queue.dequeue(), queue.close(cancel_pending_enqueues=True)
        # Only this ps (see `membership`): a session must not wait for other tasks to be up.
        with tf.compat.v1.Session(server.target, config=membership.session_config()) as session:
            released = threading.Event()

            def wait_for_token() -> None:
                try:
                    session.run(dequeue)
                    released.set()
                except tf.errors.OpError:
                    pass  # closed on the way out

            waiter = threading.Thread(target=wait_for_token, name="ps-release", daemon=True)
            waiter.start()
            stop.armed = True  # serving: a first stop signal ends the wait below in order; a second, at once
            logging.info("%s serving until the chief releases it", task)
            try:
                return _wait(released, membership, orphan_secs, task, stop)
            finally:
                if not released.is_set():
                    session.run(close)
                waiter.join(timeout=POLL_SECS)


def _wait(released: threading.Event, membership: Membership, orphan_secs: float, task: TaskId,
          stop: StopRequest) -> int:
    chief_seen = time.monotonic()
    while not stop.requested:
        if released.wait(POLL_SECS):
            logging.info("the chief has saved the final checkpoint: %s is done", task)
            # Done: a stop signal now (a launcher ending the run as this process exits) has nothing left to
            # stop, and must not turn this exit 0 into 143.
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
            return exit_codes.OK
        if _reachable_chief(membership, POLL_SECS) is not None:
            chief_seen = time.monotonic()
        elif time.monotonic() - chief_seen > orphan_secs:
            logging.error("the chief (%s) has not accepted connections for %.0f s: %s gives up",
                          membership.chief_address(), orphan_secs, task)
            return exit_codes.TRAINING_FAILED
    _serve_while_the_chief_saves(membership, task, stop)
    return stop.exit_code


def _reachable_chief(membership: Membership, timeout_secs: float) -> Optional[str]:
    """The chief's current address (it may move, see `membership`) if it accepts connections, else None."""
    chief = membership.chief_address()
    return chief if chief is not None and accepts_connections(chief, timeout_secs=timeout_secs) else None


def _serve_while_the_chief_saves(membership: Membership, task: TaskId, stop: StopRequest,
                                 grace_secs: float = STOP_GRACE_SECS) -> None:
    """After a first stop signal: return once the chief no longer accepts connections (it has saved and
    ended, or was never up), or after `grace_secs`. A second stop signal ends the process from its handler."""
    deadline = time.monotonic() + grace_secs
    chief = _reachable_chief(membership, STOP_POLL_SECS * 5)
    if chief is None:
        return
    logging.info("%s received %s: serving while the chief (%s) may save, up to %.0f s", task, stop.name, chief,
                 grace_secs)
    while time.monotonic() < deadline:
        time.sleep(STOP_POLL_SECS)
        if _reachable_chief(membership, STOP_POLL_SECS * 5) is None:
            logging.info("the chief has ended: %s stops", task)
            return
    logging.warning("the chief still accepts connections %.0f s after %s was asked to stop: it stops anyway",
                    grace_secs, task)
