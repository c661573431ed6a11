"""How a process of this project is asked to stop: one mechanism for the launcher and the task program.

SIGTERM (a machine being preempted), SIGINT (Ctrl-C) and SIGHUP mean the same to both kinds of process:
- the first asks for an orderly stop: the task saves at the step it reached, the launcher asks its tasks to
  do so and waits for them (up to the grace);
- a second one, whichever, asks to stop now: the task exits without saving, the launcher kills its tasks.
While there is nothing to save (`armed` is False: a task still importing, a launcher still checking its
input), the first signal already stops at once.

The exit code is 128 + the first signal (143 for SIGTERM), the code Kubeflow's `ExitCode` policy retries.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopNow(SystemExit):
    """Raised from the handler when a launcher should end at once, with the contract's exit code."""


def exit_at_once(code: int) -> NoReturn:
    """End a task now, with exit code `code`, raising nothing into what its main thread was running.

    A task's stop handler used to raise StopNow there. Raised inside TensorFlow, it broke the exit it asked
    for: while pybind11 built an UnavailableError, the swap of exceptions became a RuntimeError ("MISMATCH of
    original and normalized active exception types", exit 1), or the task's exit went on to close sessions
    with a ps that had gone until it was SIGKILLed. A task that stops now has nothing to save or close.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a write the signal interrupted holds the buffer: its text is lost, not the exit
            pass
    os._exit(code)


class StopRequest:
    """The stop signals received so far. `install()` makes it the handler of every stop signal."""

    def __init__(self, *, armed: bool, exit_when_hurried: bool) -> None:
        self.signum: Optional[int] = None
        self.hurried = False
        # Asked to finish early (a task only: see task_env.FINISH_SIGNAL): stop like a first signal, but as
        # a task that is done, not stopped.
        self.finishing = False
        # Whether an orderly stop can do something (save, stop tasks in order); if not, stop at once.
        self.armed = armed
        # A task stops now by exiting (`exit_at_once`); a launcher must first kill its tasks, so a second
        # signal only takes note, and a first one before it has tasks raises StopNow for its cleanup.
        self._exit_when_hurried = exit_when_hurried

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def install(self) -> StopRequest:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        return self

    @property
    def should_stop(self) -> bool:
        return self.requested or self.finishing

    def finish(self, signum: int = 0, frame=None) -> None:
        self.finishing = True

    def _handle(self, signum: int, frame) -> None:
        self.receive(signum)

    def receive(self, signum: int) -> None:
        """Take note of stop signal `signum`, as the installed handler does (tests call it directly)."""
        if self.signum is None:
            self.signum = signum
        else:
            self.hurried = True
        if self._exit_when_hurried and (not self.armed or self.hurried):
            exit_at_once(self.exit_code)
        if not self.armed:
            raise StopNow(self.exit_code)
