"""The task's side of the start gate (see `task_env.GATED`): report READY, then wait for the launcher's GO."""

from __future__ import annotations

import os
import signal
import threading

from launcher.cluster import status, task_env


def pass_gate() -> None:
    """Report that this task's flags and model are good; when the launcher gates, wait for its go-ahead."""
    if os.environ.get(task_env.GATED) != "1":
        status.emit(status.READY)
        return
    go = threading.Event()
    # Installed before READY is sent: the launcher signals only after READY, and the signal's default
    # action would end the process.
    signal.signal(task_env.GO_SIGNAL, lambda signum, frame: go.set())
    status.emit(status.READY)
    while not go.wait(0.1):  # short waits: signal handlers run between them
        pass
