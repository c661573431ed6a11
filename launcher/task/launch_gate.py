"""The task's side of the start gate (see `task_env.GATED`): report READY, then wait for the launcher's GO."""

from __future__ import annotations

import os
import signal
import time

from launcher.cluster import status, task_env

_POLL_SECS = 0.01  # the signal does not cut a sleep short (PEP 475): GO is seen this much later


def pass_gate() -> None:
    """Report that this task's flags and model are good; when the launcher gates, wait for its go-ahead."""
    if os.environ.get(task_env.GATED) != "1":
        status.emit(status.READY)
        return
    # A plain flag, not a threading.Event: the handler runs in the main thread between bytecodes, and
    # Event.set() would take the lock that Event.wait() in that same thread may be holding at that moment:
    # a deadlock at start, seen on a loaded machine.
    go = []
    # Installed before READY is sent: the launcher signals only after READY, and the signal's default
    # action would end the process.
    signal.signal(task_env.GO_SIGNAL, lambda signum, frame: go.append(signum))
    status.emit(status.READY)
    while not go:
        time.sleep(_POLL_SECS)  # the handler runs during the sleep, which then goes on to its end
