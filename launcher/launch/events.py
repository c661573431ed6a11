"""What a task's output reader hands the supervisor's loop: one typed event per status line.

Output-reader threads only parse (`TaskOutput` -> `from_status`) and put events on the loop's queue; the
loop alone applies them to the run's state. A status line is the task's data, so each field is checked
by type here: a field of the wrong type is dropped (as if absent), never trusted.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from launcher.cluster import status
from launcher.cluster.spec import TaskId


@dataclasses.dataclass(frozen=True)
class Status:
    """One status line of `task`'s current process, heard at `mono` (monotonic) and `wall` (Unix) time."""

    task: TaskId
    kind: str
    mono: float
    wall: float
    step: Optional[int] = None          # the global step (for EVAL: the scored checkpoint's)
    local_steps: Optional[int] = None
    metrics: Optional[dict] = None      # EVAL
    reason: Optional[str] = None        # EARLY_STOP
    failure: Optional[dict] = None      # FAILURE: the task's own account of why it ends (see status)

    @property
    def global_step(self) -> Optional[int]:
        """The run's global step this event tells of (an evaluator's scored step is not one)."""
        return self.step if self.kind != status.EVAL else None


@dataclasses.dataclass(frozen=True)
class Ended:
    """`task`'s current process has ended, as its backend learned it: the loop reaps it now rather than at
    its next look (up to `supervisor.POLL_SECS` later, a twentieth of a restarted worker's start)."""

    task: TaskId


def _int(value) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _str(value) -> Optional[str]:
    return value if isinstance(value, str) else None


def from_status(task: TaskId, fields: dict, mono: float, wall: float) -> Optional[Status]:
    """The event of one parsed status line (`status.parse`), or None when it names no event."""
    kind = fields.get("event")
    if not isinstance(kind, str):
        return None
    metrics = fields.get("metrics")
    failure = fields.get("failure") if kind == status.FAILURE else None
    return Status(task, kind, mono, wall, step=_int(fields.get("step")), local_steps=_int(fields.get("local_steps")),
                  metrics=metrics if isinstance(metrics, dict) else None, reason=_str(fields.get("reason")),
                  failure=status.check_failure(failure) if isinstance(failure, dict) else None)
