"""Back-off and a deadline for re-creating sessions after peers went away, and a deadline for each step.

`MonitoredSession` re-creates its session on Unavailable/Aborted forever and without pause; a ps that never
comes back would hang its run. The clock restarts at every training step, so only failures that last, with
no step in between, end the task.

A step can also wait for ever without any error: a peer's host cut off for a while closes its end of a
connection, the close never arrives, and a step whose RPC was in flight waits on a connection that is dead
on the other side: TensorFlow makes its gRPC channels without keepalive, and its RPCOptions have no setting
for one, so nothing ever probes that connection. `step_deadline.StepDeadline`
bounds such a step; TensorFlow cancels it (RunOptions.timeout_in_ms), the cancel's write meets the peer's
reset, and the next session connects afresh.
"""

from __future__ import annotations

import time

import tensorflow as tf
from absl import logging


class RecoveryDeadlineExceeded(tf.errors.DeadlineExceededError):
    """Sessions kept failing for longer than the deadline; not retried by MonitoredSession."""

    def __init__(self, message: str):
        super().__init__(None, None, message)


# What a peer's restart does to a `run` in flight (a step, or a session's creation): TensorFlow cancels
# its receives ("RecvFromRemoteAsync is cancelled"), or hands the peer's error over garbled
# (UnicodeDecodeError in TF_SessionRun_wrapper, seen as a ps restarted). Both mean "try again", as the
# Aborted that MonitoredSession recovers from does; `Recovery.retry` turns them into one.
INTERRUPTIONS = (tf.errors.CancelledError, UnicodeDecodeError)

QUIET_SECS = 10.0
# How often a peer that does not accept connections is probed again: a refused connect costs nothing, and
# a restarted peer (forked warm, up within a second) must be found at once, not after a back-off.
PEER_POLL_SECS = 0.05
LOG_EVERY_SECS = 5.0


class Recovery:
    """Back-off and a deadline for re-creating sessions; the clock restarts at every training step."""

    def __init__(self, deadline_secs: float, first_backoff_secs: float = 0.1, max_backoff_secs: float = 1.0):
        self.deadline_secs = deadline_secs
        self._first_backoff = first_backoff_secs
        self._max_backoff = max_backoff_secs
        self._failing_since = None
        self._backoff = first_backoff_secs
        self._logged_at = None

    def progressed(self) -> None:
        self._failing_since = None
        self._backoff = self._first_backoff
        self._logged_at = None

    def failed(self, error: Exception, peer_down: bool = False) -> None:
        """Wait before the next attempt, or raise when failures have lasted past the deadline.

        `peer_down`: a peer does not accept connections yet; it is probed again within PEER_POLL_SECS, not
        after a back-off, so that the moment it is back is the moment this task goes on."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since > self.deadline_secs:
            raise RecoveryDeadlineExceeded(
                f"gave up after {self.deadline_secs:.0f}s of failing to reach the cluster: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        wait = PEER_POLL_SECS if peer_down else self._backoff
        if not peer_down or self._logged_at is None or now - self._logged_at >= LOG_EVERY_SECS:
            self._logged_at = now
            # A peer that is still starting is normal for a few seconds; only a longer outage is worth a warning.
            log = logging.warning if now - self._failing_since > QUIET_SECS else logging.info
            log("cluster not reachable (%s); retrying in %.2fs", str(error).splitlines()[0] if str(error) else
                type(error).__name__, wait)
        time.sleep(wait)
        if not peer_down:
            self._backoff = min(self._backoff * 2, self._max_backoff)

    def retry(self, message: str) -> "Interrupted":
        """After the back-off (or the end of the deadline), the error to raise so that MonitoredSession
        re-creates the session, which it does only for Aborted and Unavailable."""
        interrupted = Interrupted(message)
        self.failed(interrupted)
        return interrupted


class Interrupted(tf.errors.AbortedError):
    """A step or a session creation cut short: a step past its deadline, a peer's restart."""

    def __init__(self, message: str):
        super().__init__(None, None, message)
