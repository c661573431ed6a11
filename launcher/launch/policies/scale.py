"""`launcher scale`: which workers to add or ask to leave, or why the request is refused.

The workers of a run are always worker:0 .. worker:N-1: added workers take the next indices, and workers
leave highest index first (every run has a chief: all its workers may leave; the chief and the ps are not
scaled). A run that has reached its target is not scaled (its workers are already finishing). A worker
asked to leave that is still running blocks a new request that would bring it back (its index is taken
until its process has ended).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

from launcher.cluster.spec import WORKER, TaskId
from launcher.launch.policies import end_of_run
from launcher.launch.task_state import TaskState

MAX_WORKERS = 1000


@dataclasses.dataclass(frozen=True)
class ScaleDecision:
    add: tuple[TaskId, ...] = ()
    remove: tuple[TaskId, ...] = ()     # highest index first
    refused: Optional[str] = None       # one line: why nothing is done

    @property
    def message(self) -> str:
        if self.refused:
            return self.refused
        if not self.add and not self.remove:
            return "nothing to do"
        parts = ([f"adding {', '.join(map(str, self.add))}"] if self.add else []) + (
            [f"asking {', '.join(map(str, self.remove))} to finish and leave"] if self.remove else [])
        return "; ".join(parts)


def members(states: Iterable[TaskState]) -> list[TaskId]:
    """The run's current workers (not asked to leave, not ended for good), by index."""
    return sorted((s.task for s in states if s.task.job == WORKER and s.member), key=lambda t: t.index)


def decide(states: Iterable[TaskState], workers: int) -> ScaleDecision:
    states = list(states)
    if not 0 <= workers <= MAX_WORKERS:
        return ScaleDecision(refused=f"--workers {workers}: must be between 0 and {MAX_WORKERS}")
    if end_of_run.chief_reached_target(states):
        return ScaleDecision(refused="the run has reached its target; its workers are finishing")
    current = members(states)
    count = len(current)
    if workers > count:
        add = tuple(TaskId(WORKER, i) for i in range(count, workers))
        by_task = {s.task: s for s in states}
        busy = [t for t in add if t in by_task and by_task[t].running]
        if busy:
            return ScaleDecision(refused=f"{', '.join(map(str, busy))} is still leaving; ask again once it "
                                         "has exited")
        return ScaleDecision(add=add)
    return ScaleDecision(remove=tuple(reversed(current[workers:])))
