"""Where one task's output goes: its log file, the console (prefixed), and the supervisor's event queue (status
lines, handed over parsed; the supervisor's loop applies them).

Log files live at `<model_dir>/logs/<job>-<index>.log`; a restarted task appends to the same file after
a header line, so one file tells a task's whole story.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Callable, Optional

from launcher.cluster import safe_files, status
from launcher.cluster.errors import UserError
from launcher.launch.console import Console, is_noise
from launcher.launch.console_filter import LineFilter
from launcher.cluster.spec import TaskId

TAIL_LINES = 20
ATTEMPT_LINES = 3000


def log_path(model_dir: str, task: TaskId) -> str:
    return os.path.join(model_dir, "logs", f"{task.job}-{task.index}.log")


class TaskOutput:
    def __init__(self, task: TaskId, model_dir: str, console: Console,
                 on_status: Callable[[TaskId, dict], None], show_tf_logs: bool = False):
        self.task = task
        self.path = log_path(model_dir, task)
        safe_files.make_dir(os.path.dirname(self.path))
        self._console = console
        self._on_status = on_status
        self._show_tf_logs = show_tf_logs
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._lock = threading.Lock()
        self._file: Optional[object] = None
        self._lines = 0  # lines in the log file so far, so that a note can be pointed at ("worker-0.log:812")
        self._capture: Optional[list[str]] = None
        self._filter = LineFilter()
        # The current process's last lines, for root causes: the log file itself may be unwritable (disk full).
        self._attempt: collections.deque[str] = collections.deque(maxlen=ATTEMPT_LINES)
        self._log_error: Optional[str] = None

    def begin(self, attempt: int, argv: list[str]) -> None:
        """A new process of this task starts writing."""
        with self._lock:
            if self._file is None:
                self._lines = _count_lines(self.path)
                try:
                    self._file = safe_files.open_append(self.path)
                except (OSError, UserError) as e:  # checked before the run (`run.check_launcher_files`): a race
                    self._console.line(f"[launcher] cannot write {self.path}: {e}")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._write_log(f"=== {self.task} attempt {attempt} at {stamp}: {' '.join(argv)}")
            self._attempt.clear()
            self._tail.clear()

    def write(self, line: str) -> None:
        """One line of the task's stdout/stderr."""
        line = line.rstrip("\n")
        parsed = status.parse(line)
        if parsed is not None:
            self._on_status(self.task, parsed)
            return
        with self._lock:
            self._write_log(line)
            self._attempt.append(line)
            if self._capture is not None:
                self._capture.append(line)  # a stack dump the launcher asked for: the log's, not the console's
                return
            self._tail.append(line)
            show = self._filter.show(line) or (self._show_tf_logs and not self._filter.muted)
        if show:
            self._console.line(f"[{self.task}] {line}")

    def _write_log(self, line: str) -> None:
        if self._file is None:
            return
        try:
            self._file.write(line + "\n")
            self._lines += 1
        except OSError as e:  # a full disk must not stop the launcher from following the task
            if self._log_error is None:
                self._log_error = e.strerror
                self._console.line(f"[launcher] cannot write {self.path}: {e.strerror}")

    def note(self, lines: list[str]) -> Optional[str]:
        """Write the launcher's own `lines` into the log; returns where the first one is ("path:line")."""
        with self._lock:
            if self._file is None:
                return None
            where = f"{self.path}:{self._lines + 1}"
            for line in lines:
                self._write_log(line)
            return where

    def start_capture(self) -> None:
        """From now on the task's output goes to its log only, and is kept for `end_capture`."""
        with self._lock:
            self._capture = []

    def captured(self) -> list[str]:
        with self._lock:
            return list(self._capture or [])

    def end_capture(self) -> list[str]:
        with self._lock:
            lines, self._capture = self._capture or [], None
            return lines

    def mute(self) -> None:
        """From now on this task's output goes to its log only (it is being stopped after a failure)."""
        with self._lock:
            self._filter.muted = True

    def attempt_lines(self) -> list[str]:
        """The current process's output, its last ATTEMPT_LINES lines."""
        with self._lock:
            return list(self._attempt)

    def tail(self, lines: int = 10) -> list[str]:
        with self._lock:
            return [line for line in self._tail if not is_noise(line)][-lines:]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass  # a full disk: what could not be written was shown on the console
                self._file = None


def _count_lines(path: str) -> int:
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:  # missing, or a symlink (refused when the file is opened)
        return 0
