"""How each role gets its session: the chief restores or initialises, a worker waits for the chief.

This is the one place where the chief and a worker differ in how a session comes to be, as in TensorFlow
itself (`prepare_session` versus `wait_for_session`). Both are TensorFlow's own creators; what is added:

- the chief picks its checkpoint with `checkpoints.choose` each time a session is made (after a ps
  restart too), so a garbled state file or a truncated newest checkpoint never sends it back to step 0;
- a worker polls for the chief's model every `--recovery_wait_secs` (sooner at first) instead of every 30 s;
- every poll of the cluster's state is a session of its own with a deadline (`bounded_probe`): TensorFlow
  gives a session's creation none, and one has been seen to wait for good on a peer that went away or a
  connection a cut-off host left behind;
- `MonitoredSession` re-creates sessions on Unavailable/Aborted forever and without pause: `recovery`
  adds back-off and a deadline, so a task that never comes back ends the run instead of hanging it.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, Sequence, TypeVar

import tensorflow as tf
from absl import logging

from launcher.cluster import status
from launcher.cluster.stop_signals import StopRequest, exit_at_once
from launcher.task import bounded_call, checkpoints
from launcher.cluster.peers import accepts_connections
from launcher.task.recovery import INTERRUPTIONS, Recovery

# Called at each session creation: the live cluster (see `membership`) may have changed since the last one.
ConfigSource = Callable[[], tf.compat.v1.ConfigProto]
PeersSource = Callable[[], Sequence[str]]

_RECONNECT_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError)
T = TypeVar("T")


class _BoundedCreator(tf.compat.v1.train.SessionCreator):
    """Creates sessions with back-off and a deadline.

    TensorFlow's CreateSession waits without end for a task that does not answer ("CreateSession still
    waiting for response from worker"), where no deadline could act. So the peers this session needs
    are probed first, and one that is down counts as a failed attempt.
    """

    def __init__(self, make: Callable[[], tf.compat.v1.Session], recovery: Recovery, peers: PeersSource,
                 stop_without_session: Optional[StopRequest] = None):
        self._make = make
        self._recovery = recovery
        self._peers = peers
        self._stop = stop_without_session

    def create_session(self) -> tf.compat.v1.Session:
        # The launcher dismisses a worker that has no session when the chief ends the run: the ps it
        # would need are released then, so it could only wait for them until it is given up on.
        status.emit(status.NO_SESSION)
        if self._stop is not None:
            # A worker saves nothing: without a session, a stop signal (a dismissal, a preemption) has
            # nothing to wait for and ends it at once. Its session's StopRequestHook arms the stop again.
            self._stop.armed = False
            if self._stop.requested:
                exit_at_once(self._stop.exit_code)
        # Peers still starting (or restarting) are waited for here, quietly, within the deadline.
        while (down := next((p for p in self._peers() if not accepts_connections(p)), None)) is not None:
            self._recovery.failed(tf.errors.UnavailableError(None, None, f"{down} does not accept connections"),
                                  peer_down=True)
        try:
            return _bounded_close(self._make())
        except _RECONNECT_ERRORS as e:
            self._recovery.failed(e)
            raise  # MonitoredSession tries again
        except INTERRUPTIONS as e:
            # A peer restarting while this session is made: MonitoredSession tries again only for the two
            # errors above.
            raise self._recovery.retry(f"session creation interrupted ({type(e).__name__})") from e


CLOSE_SECS = 10.0


def _bounded_close(session: tf.compat.v1.Session) -> tf.compat.v1.Session:
    """`session`, whose close() gives up waiting after CLOSE_SECS.

    A session that carries its cluster (see `membership`) is closed on every task it touched, and closing
    it after a ps died has been seen to block for good (in TF_CloseSession, as MonitoredSession closed it
    to make a new one): the task would never reach the ps's successor. The close goes on in a thread of
    its own; the task makes its next session meanwhile.
    """
    close = session.close

    def bounded() -> None:
        if getattr(session, "_closed", False) or sys.is_finalizing():
            # Closed already (Session.__del__ closes again), or Python is exiting, where a new thread
            # would never start: nothing to wait for, or no way to.
            return close()
        try:
            bounded_call.within(CLOSE_SECS, close, "session-close")
        except bounded_call.Abandoned:
            logging.warning("closing the old session takes longer than %.0fs; going on without waiting", CLOSE_SECS)
        except Exception as e:  # an old session's close failing (its peer gone) must not stop the next one
            logging.warning("closing the old session failed (%s: %s); going on", type(e).__name__, e)

    session.close = bounded
    return session


PROBE_SECS = 20.0


def bounded_probe(master: str, config: tf.compat.v1.ConfigProto, fetch: tf.Tensor):
    """`fetch`, run in a session of its own that is made, run and closed within PROBE_SECS.

    TensorFlow's CreateSession asks every task the session's devices live on for its devices, and waits for
    each answer without a deadline (a timeout in the ConfigProto only stops its caller waiting once the call
    has ended anyway). Seen on the host bed: a worker whose peer's host had been cut off for 20 s, and a
    worker that polled a ps the chief had just released, each waited for good in a poll's CreateSession, and
    the run waited for that worker. So each poll runs in a thread of its own; one with no answer in time is
    left behind (it reads only: nothing it may still do changes the cluster) and counts as a peer that is
    unavailable: the caller's back-off and deadline apply, and the next poll makes a new session.
    """
    def probe():
        # The graph by name: a thread has its own default graph.
        with tf.compat.v1.Session(master, graph=fetch.graph, config=config) as session:
            return session.run(fetch)

    return _within_probe_deadline(probe)


def _within_probe_deadline(call: Callable[[], T]) -> T:
    """`call()` (which makes a session and runs it) within PROBE_SECS; one left behind is a peer unavailable."""
    try:
        return bounded_call.within(PROBE_SECS, call, "session-probe")
    except bounded_call.Abandoned:
        raise tf.errors.UnavailableError(None, None, f"a new session had no answer from the cluster within "
                                                     f"{PROBE_SECS:.0f}s; trying another") from None


def _model_ready(master: str, config: tf.compat.v1.ConfigProto, scaffold: tf.compat.v1.train.Scaffold) -> bool:
    """Whether every variable of the model is initialised on the cluster already."""
    # The global variables only: local ones (a SyncReplicasOptimizer's local step) are per session.
    return bounded_probe(master, config, scaffold.ready_for_local_init_op).size == 0


# A worker's polls for the chief's model start this often and slow down to `recovery_wait_secs`. At a
# launch every worker waits for a chief that is a fraction of a second from ready: polling every 0.25 s
# from the start left the last worker idle for up to that long after the model was ready (warm local4's
# slowest first step came 0.12 s sooner with 0.05 s polls, measured in alternation). A poll is a session
# of its own (about 50 ms on two loaded cores), so a long wait (a chief restoring a large checkpoint)
# slows to the steady pace within a second.
FIRST_POLL_SECS = 0.05
POLL_GROWTH = 1.5


class _WaitForChiefCreator(tf.compat.v1.train.SessionCreator):
    """TensorFlow's `wait_for_session`, as `WorkerSessionCreator` calls it, polling at most every
    `recovery_wait_secs` (sooner at first: see FIRST_POLL_SECS).

    The stock creator builds its SessionManager with recovery_wait_secs=30 and no way to change it: a
    worker that starts before the chief has initialised would idle for 30 s. Each poll is a session made
    within a deadline (see `_ready_session`), and the poll that finds the model ready is the session.
    """

    def __init__(self, scaffold: tf.compat.v1.train.Scaffold, master: str, config: ConfigSource,
                 max_wait_secs: float, recovery_wait_secs: float):
        self._scaffold = scaffold
        self._master = master
        self._config = config
        self._max_wait_secs = max_wait_secs
        self._recovery_wait_secs = recovery_wait_secs

    def create_session(self) -> tf.compat.v1.Session:
        self._scaffold.finalize()
        config = self._config()
        deadline = time.monotonic() + self._max_wait_secs
        pause = min(FIRST_POLL_SECS, self._recovery_wait_secs)
        while (session := _ready_session(self._master, config, self._scaffold)) is None:
            if time.monotonic() >= deadline:
                raise tf.errors.DeadlineExceededError(
                    None, None, f"the chief had not made the model ready after {self._max_wait_secs:.0f}s "
                                "(--max_wait_secs)")
            logging.log_every_n_seconds(logging.INFO, "waiting for the chief to make the model ready", 5)
            time.sleep(pause)
            pause = min(pause * POLL_GROWTH, self._recovery_wait_secs)
        return session


def _ready_session(master: str, config: tf.compat.v1.ConfigProto,
                   scaffold: tf.compat.v1.train.Scaffold) -> Optional[tf.compat.v1.Session]:
    """A worker's session once the chief has made the model ready, its local variables initialised (what
    `SessionManager.wait_for_session` does at each look); None, the session closed, while it is not ready.

    Made, checked and initialised within PROBE_SECS, as `bounded_probe` (why: there). A poll and the
    session used to be two sessions: a poll's, closed, then wait_for_session's own, which finds the model
    ready. Keeping the poll's saves a session's creation (0.07 s of a restarted worker's start, measured).
    A call left behind initialises this worker's local variables at most, in a session nobody uses.
    """
    def make() -> Optional[tf.compat.v1.Session]:
        # The graph by name: a thread has its own default graph.
        session = tf.compat.v1.Session(master, graph=scaffold.ready_op.graph, config=config)
        try:
            if not _uninitialized(session, scaffold.ready_for_local_init_op):
                if scaffold.local_init_op is not None:
                    session.run(scaffold.local_init_op, feed_dict=scaffold.local_init_feed_dict)
                if not _uninitialized(session, scaffold.ready_op):
                    return session
        except BaseException:
            session.close()
            raise
        session.close()  # not ready yet
        return None

    return _within_probe_deadline(make)


def _uninitialized(session: tf.compat.v1.Session, report: Optional[tf.Tensor]) -> bool:
    """Whether `report` (a `report_uninitialized_variables`) names any variable; none to check is ready."""
    return report is not None and session.run(report).size > 0


def choose_checkpoint(model_dir: str) -> checkpoints.Choice:
    """The checkpoint the chief would restore into the current graph's variables (see `checkpoints`)."""
    shapes = {v.op.name: v.shape.as_list() for v in tf.compat.v1.global_variables()}
    return checkpoints.choose(model_dir, shapes)


def chief(scaffold: tf.compat.v1.train.Scaffold, master: str, config_source: ConfigSource,
          model_dir: str, recovery: Recovery, first_choice: checkpoints.Choice,
          peers: PeersSource, variables_on_ps: bool) -> tf.compat.v1.train.SessionCreator:
    """Restore the newest good checkpoint in `model_dir` or, when there is none, initialise: never both.

    `first_choice` is the choice made before the session's hooks touched the directory; later sessions
    (after a ps restart) choose again, since newer checkpoints have been written since. A chief that
    restarts while its ps tasks live on joins their variables (see `make`): restoring the checkpoint
    would roll back what the workers trained meanwhile; so does a chief started anew at another address,
    since its sessions bring their own cluster to the ps (see `membership`).
    """
    choices = [first_choice]

    def make() -> tf.compat.v1.Session:
        scaffold.finalize()
        config = config_source()
        choice = choices.pop() if choices else choose_checkpoint(model_dir)
        if variables_on_ps and _model_ready(master, config, scaffold):
            # A restarted chief whose ps tasks lived on: their variables are newer than any checkpoint
            # (the workers kept training), and restoring would throw that work away.
            logging.info("the variables on the ps are live: joining them instead of restoring")
            scaffold.saver.recover_last_checkpoints(list(choice.restorable))
            return tf.compat.v1.train.WorkerSessionCreator(
                scaffold=scaffold, master=master, config=config).create_session()
        if choice.path is None:
            logging.info("no checkpoint in %s: initialising", model_dir)
        else:
            logging.info("restoring %s", choice.path)
            # A restarted chief's saver must count the checkpoints already on disk against max_to_keep.
            scaffold.saver.recover_last_checkpoints(list(choice.restorable))
        return tf.compat.v1.train.ChiefSessionCreator(
            scaffold=scaffold, master=master, config=config,
            checkpoint_filename_with_path=choice.path).create_session()

    return _BoundedCreator(make, recovery, peers)


def worker(scaffold: tf.compat.v1.train.Scaffold, master: str, config: ConfigSource,
           max_wait_secs: float, recovery_wait_secs: float, recovery: Recovery,
           peers: PeersSource, stop: Optional[StopRequest] = None) -> tf.compat.v1.train.SessionCreator:
    """Wait (polling quickly) until the chief has made the model ready; a stop signal meanwhile ends the
    worker at once (`stop`)."""
    creator = _WaitForChiefCreator(scaffold, master, config, max_wait_secs, recovery_wait_secs)
    return _BoundedCreator(creator.create_session, recovery, peers, stop_without_session=stop)
