"""Which of a task's output lines reach the console: the error once, not three copies of its traceback.

Everything a task writes goes to its log file; the console is for a person following the run. Kept off the
console (in the log only):
- TensorFlow's start-up notices and runtime chatter (`console.is_noise`), with their indented continuations;
- deprecation notices and their "Instructions for updating" paragraphs, repeated on every restore and
  every checkpoint rotation;
- the frames of tracebacks, Python's and TensorFlow's "Original stack trace": the launcher's failure line
  names the error and the user's own frame (see `root_cause`);
- an error line already shown (TensorFlow repeats the same message in each wrapper it raises through), and
  a line of an error's message already shown in an earlier error's (a graph's "Graph execution error"
  repeats the op's error, "From /job:...:" and all, after the node's definition frames);
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
                          r"Detected at node .* defined at \(most recent call last\):|"
                          r"During handling of the above exception|The above exception was the direct cause)")
_FRAME = re.compile(r"^\s+|^$")


class LineFilter:
    def __init__(self) -> None:
        self._in_deprecation = False
        self._in_trace = False
        # Error lines and the lines of their messages shown so far (the recent ones suffice: copies come
        # together, as an exception is re-raised).
        self._shown_errors: collections.deque[str] = collections.deque(maxlen=200)
        self._in_error = False  # in the lines of an error's message, after its first
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
            self._in_error = False
            return False
        if self._in_trace:
            if _FRAME.match(line):
                return False
            self._in_trace = False  # the exception line itself, which ends the traceback
            self._in_error = True  # (or, after a node's definition frames, the rest of the error's message)
        if self._after_noise and _FRAME.match(line):
            return False  # the indented rest of a notice kept off ("\t [[{{node ...}}]]" of a cancelled op)
        self._after_noise = is_noise(line)
        if self.muted or self._after_noise:
            return False
        if _looks_like_error(line):
            self._in_error = True
            key = _error_key(line)
            if key in self._shown_errors:
                return False
            self._shown_errors.append(key)
            self._shown_errors.append(key.split(": ", 1)[-1])  # its message alone, as a later copy may put it
            return True
        if _LOG_RECORD.match(line):
            self._in_error = False
        elif self._in_error and line.strip():
            if line.strip() in self._shown_errors:
                return False
            self._shown_errors.append(line.strip())
        return True


def _looks_like_error(line: str) -> bool:
    return bool(re.match(r"^(\w+\.)*\w*(Error|Exception)\b", line)) or line.startswith("E") and bool(
        _LOG_RECORD.match(line))


def _error_key(line: str) -> str:
    """The message without its logger prefix or exception class path, so that copies compare equal."""
    line = re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+\] ", "", line)
    return re.sub(r"^(\w+\.)*(\w+):", r"\2:", line).strip()
