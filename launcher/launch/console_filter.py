"""Which of a task's output lines reach the console: the error once, not three copies of its traceback.

Everything a task writes goes to its log file; the console is for a person following the run. Kept off the
console (in the log only):
- TensorFlow's start-up notices and runtime chatter (`console.is_noise`), with their indented continuations;
- deprecation notices and their "Instructions for updating" paragraphs, repeated on every restore and
  every checkpoint rotation;
- the frames of tracebacks, Python's and TensorFlow's "Original stack trace": the launcher's failure line
  names the error and the user's own frame (see `root_cause`);
- an error line already shown (TensorFlow repeats the same message in each wrapper it raises through);
- whatever a task says while the launcher stops it at the end of a failed run (raw gRPC "Connection
  refused" lines: consequences, not causes).
"""

from __future__ import annotations

import collections
import re

from launcher.launch.console import is_noise

_LOG_RECORD = re.compile(r"^[IWEF]\d{4} ")  # absl's "W1127 11:23:25.761703 ..." prefix
_DEPRECATION = re.compile(r"^W\d{4} .*deprecation\.py:\d+\]")
_TRACE_START = re.compile(r"^(Traceback \(most recent call last\):|Original stack trace for |"
                          r"During handling of the above exception|The above exception was the direct cause)")
_FRAME = re.compile(r"^\s+|^$")


class LineFilter:
    def __init__(self) -> None:
        self._in_deprecation = False
        self._in_trace = False
        self._shown_errors: collections.deque[str] = collections.deque(maxlen=50)
        self._after_noise = False
        self.muted = False

    def show(self, line: str) -> bool:
        """Whether `line` (one line of the task's output) goes to the console."""
        if self._in_deprecation:
            if _LOG_RECORD.match(line) is None and not _TRACE_START.match(line):
                return False
            self._in_deprecation = False
        if _DEPRECATION.match(line):
            self._in_deprecation = True
            return False
        if _TRACE_START.match(line):
            self._in_trace = True
            return False
        if self._in_trace:
            if _FRAME.match(line):
                return False
            self._in_trace = False  # the exception line itself, which ends the traceback
        if self._after_noise and _FRAME.match(line):
            return False  # the indented rest of a notice kept off ("\t [[{{node ...}}]]" of a cancelled op)
        self._after_noise = is_noise(line)
        if self.muted or self._after_noise:
            return False
        if _looks_like_error(line):
            key = _error_key(line)
            if key in self._shown_errors:
                return False
            self._shown_errors.append(key)
        return True


def _looks_like_error(line: str) -> bool:
    return bool(re.match(r"^(\w+\.)*\w*(Error|Exception)\b", line)) or line.startswith("E") and bool(
        _LOG_RECORD.match(line))


def _error_key(line: str) -> str:
    """The message without its logger prefix or exception class path, so that copies compare equal."""
    line = re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+\] ", "", line)
    return re.sub(r"^(\w+\.)*(\w+):", r"\2:", line).strip()
