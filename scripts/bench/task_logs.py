"""What the tasks' logs say: training steps, checkpoint restores, and when (absl timestamps).

The recovery benchmark reads the logs while the run goes on (from a byte offset taken at the kill), so
that it can tell what happened after the kill from what came before it.
"""

from __future__ import annotations

import re
import time
from typing import Optional

STEP_LINE = re.compile(r"\bstep = (\d+)")  # tf.compat.v1.train.LoggingTensorHook: "loss = ..., step = N (...)"
# A chief session being created: the launcher's own line, then TensorFlow's; both name the checkpoint.
RESTORE_LINE = re.compile(r"(?:restoring|Restoring parameters from) (\S+)")
ABSL_TIME = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) ")  # I1126 02:27:30.554600


def read_log(path: str, offset: int = 0) -> tuple[str, int]:
    """The text of `path` from byte `offset` on, and the offset of its end ("" while it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return "", offset
    return data.decode(errors="replace"), offset + len(data)


def log_steps(text: str) -> list[int]:
    """N of every "step = N" line."""
    return [int(m.group(1)) for m in STEP_LINE.finditer(text)]


def absl_time(line: str, year: int) -> Optional[float]:
    """The Unix time of an absl log line ("I1126 02:27:30.554600 ..." is local time, without the year)."""
    match = ABSL_TIME.match(line)
    if match is None:
        return None
    month, day, hour, minute, second, micros = map(int, match.groups())
    try:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1)) + micros / 1e6
    except (OverflowError, ValueError):
        return None


def timed_steps(text: str, year: int) -> list[tuple[float, int]]:
    """(time, step) of every "step = N" log line with an absl timestamp."""
    found = []
    for line in text.splitlines():
        step, at = STEP_LINE.search(line), absl_time(line, year)
        if step and at is not None:
            found.append((at, int(step.group(1))))
    return found


def first_step_line(text: str) -> Optional[str]:
    """The first "step = N" line of `text`, or None."""
    return next((line for line in text.splitlines() if STEP_LINE.search(line)), None)
