"""An early stop: the evaluator decided that training should end now. The first decision counts; every
chief and worker still running is asked to finish (they save and exit 0, as at the target)."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

from launcher.cluster.spec import CHIEF, WORKER, TaskId
from launcher.launch.task_state import TaskState


@dataclasses.dataclass(frozen=True)
class EarlyStopDecision:
    record: dict                 # for run.json: {"evaluated_step", "reason"}
    finish: tuple[TaskId, ...]   # send FINISH to these


def decide(states: Iterable[TaskState], already: Optional[dict], evaluated_step: Optional[int],
           reason: Optional[str]) -> Optional[EarlyStopDecision]:
    if already is not None:
        return None
    return EarlyStopDecision({"evaluated_step": evaluated_step, "reason": reason},
                             tuple(s.task for s in states if s.task.job in (CHIEF, WORKER) and s.running))
