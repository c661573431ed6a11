"""The launcher's terminal: task output prefixed with its name, and one progress line kept under it.

On a terminal the progress line is redrawn in place below the task output; elsewhere (CI, a pipe) it is
printed as a plain line now and then. All writers share one lock, so lines never interleave mid-line.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import TextIO

# TensorFlow's start-up notices, which TF_CPP_MIN_LOG_LEVEL does not silence; kept in the log files only.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|cpu_feature_guard"
    r"|To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags"
    r"|Local rendezvous is aborting|Waiting for model to be ready|failed call to cuInit"
    # StepCounterHook reads the step in the same run as the train op, in either order: a false alarm.
    r"|It seems that global step \(tf.train.get_global_step\) has not been increased"
    r"|^[IW]0000 00:00:"  # C++ logs written before absl logging is initialised
)


def is_noise(line: str) -> bool:
    return bool(_NOISE.search(line))


class Console:
    def __init__(self, stream: TextIO = sys.stdout, plain_every_secs: float = 10.0):
        self._stream = stream
        self._tty = stream.isatty()
        self._lock = threading.Lock()
        self._progress = ""
        self._plain_every = plain_every_secs
        self._last_plain = float("-inf")

    def line(self, text: str) -> None:
        with self._lock:
            if self._tty and self._progress:
                self._stream.write("\r\033[K")
            self._stream.write(text.rstrip("\n") + "\n")
            if self._tty and self._progress:
                self._stream.write(self._progress)
            self._stream.flush()

    def progress(self, text: str, *, force: bool = False) -> None:
        """Show `text` as the progress line (in place on a terminal, every so often otherwise)."""
        with self._lock:
            if self._tty:
                self._progress = text
                self._stream.write("\r\033[K" + text)
            elif force or time.monotonic() - self._last_plain >= self._plain_every:
                self._last_plain = time.monotonic()
                self._stream.write(text + "\n")
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._tty and self._progress:
                self._stream.write("\n")
                self._progress = ""
            self._stream.flush()
