"""The start gate: every task checks its own flags and reports READY; none trains or writes before every
task has (or has failed without stopping the run: an evaluator). Once open, a restarted process goes on
as soon as it is READY.

GO goes only to a process that has reported READY: before that it has no handler for the signal, whose
default action would end it; and only once per process (`Attempt.go_at` marks it sent).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from launcher.cluster.spec import TaskId
from launcher.launch.task_state import Phase, TaskState


@dataclasses.dataclass(frozen=True)
class GateDecision:
    is_open: bool
    release: tuple[TaskId, ...]  # send GO to these now


def decide(states: Iterable[TaskState], is_open: bool) -> GateDecision:
    states = list(states)
    is_open = is_open or all(s.ready or s.phase is Phase.FAILED for s in states)
    if not is_open:
        return GateDecision(False, ())
    return GateDecision(True, tuple(s.task for s in states if s.running and s.ready and s.attempts[-1].go_at is None))
