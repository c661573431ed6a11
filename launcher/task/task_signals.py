"""How a task is told to stop: a signal from its supervisor, or the supervisor's death.

SIGTERM, SIGINT and SIGHUP do not kill a task outright: they ask it to stop after the current step, so that
the chief saves a checkpoint at the step it reached, and the task then exits 128 + the signal (143 for
SIGTERM: what Kubeflow's `ExitCode` policy retries; an exit of 0 would pass for a finished job). Before the
training loop runs there is nothing to save, and the task exits at once.

A task whose launcher was killed (SIGKILL leaves no chance to clean up) notices that its parent changed,
stops itself the same way, and is gone within a bounded time even if saving hangs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Optional

from absl import logging

PARENT_ENV = "LAUNCHER_PARENT_PID"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopRequest:
    """The first stop signal received, and whether the training loop is there to honour it."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.loop_running = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None and signum != self.signum:
            # A second, different signal (Ctrl-C after SIGTERM): the user wants out now.
            raise SystemExit(128 + signum)
        if self.signum is None:
            self.signum = signum
            logging.info("received %s: stopping", signal.Signals(signum).name)
        if not self.loop_running:
            raise SystemExit(self.exit_code)

    def install(self) -> None:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._handle)


def parent_env() -> dict[str, str]:
    """What a launcher puts in a task's environment so that the task notices when the launcher is gone."""
    return {PARENT_ENV: str(os.getpid())}


def watch_parent(grace_secs: float, poll_secs: float = 0.5) -> None:
    """If the launcher that started us (named in the environment) dies, stop; after `grace_secs`, die."""
    expected = os.environ.get(PARENT_ENV)
    if not expected:
        return  # not started by a launcher on this machine (Kubeflow, by hand): nothing to watch

    def watch() -> None:
        # The launcher may already be gone: it can die while this process is still importing.
        while os.getppid() == int(expected):
            time.sleep(poll_secs)
        logging.error("launcher (pid %s) is gone: stopping", expected)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_secs)
        os._exit(128 + signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
