"""Stop signals, seen from another thread while the main thread is blocked inside TensorFlow.

Python runs a signal's handler in the main thread, between two bytecodes: while the main thread waits in
`Session.run` (a synchronous replica waiting for a token that only the others' gradients will bring), the
handler, and so `StopRequest`, learns nothing of a SIGTERM. The interpreter's C-level handler does write
the signal's number to the wakeup fd (`signal.set_wakeup_fd`) at once, whatever the main thread does; a
thread that reads it can act: the chief releases the replicas waiting for a token, its own step ends, and
then its handler runs as usual.
"""

from __future__ import annotations

import os
import select
import signal

from launcher.cluster import task_env
from launcher.cluster.stop_signals import STOP_SIGNALS

_WATCHED = frozenset(int(s) for s in (*STOP_SIGNALS, task_env.FINISH_SIGNAL))


class StopSignals:
    """Install from the main thread; `wait(timeout)` from any one thread."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        os.set_blocking(self._read, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self.seen = False

    def wait(self, timeout: float) -> bool:
        """Whether a stop (or finish) signal has arrived, waiting up to `timeout` seconds for one."""
        if not self.seen and select.select([self._read], [], [], timeout)[0]:
            try:
                self.seen = bool(_WATCHED.intersection(os.read(self._read, 512)))
            except BlockingIOError:
                pass
        return self.seen

    def close(self) -> None:
        """Give the wakeup fd back (main thread)."""
        signal.set_wakeup_fd(self._previous)
        os.close(self._write)
        os.close(self._read)
