"""What becomes of a task process that ended: done, not needed, restarted, or failed. One policy for every
way a process ends: by itself, killed by the watchdog, or killed by the launcher because a peer moved.

- Exit 0 is done (a ps too: it exits 0 only once the chief released it after the final checkpoint).
- A worker that `launcher scale` asked to leave is not needed, however it ended: it neither fails the run
  nor counts as a restart.
- Killed by the launcher so that it learns a moved peer's address: restarted, outside the budget (it did
  nothing wrong).
- Killed by the watchdog: not needed when that was after the chief's final save, else restarted like any
  kill while restarts last, whatever the restart policy (the hang, not the task's code, ended it).
- A worker that ends after the chief's final checkpoint is not needed any more.
- Otherwise the restart policy and the budget decide; what is not restarted has failed. A failed evaluator
  lets training go on (but not its bad input: the run was asked for wrongly).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Optional

from launcher.cluster import exit_codes
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import EVALUATOR, WORKER, TaskId


class Verdict(enum.Enum):
    DONE = "done"
    NOT_NEEDED = "not needed"
    RESTART = "restart"
    EVALUATOR_FAILED = "evaluator failed"
    FAILED = "failed"


class Why(enum.Enum):
    """Why a process is restarted, which says how the launcher words it and whether it counts."""

    POLICY = "policy"        # the restart policy allows it: counts against --max_restarts
    HUNG = "hung"            # the watchdog killed it: counts
    PEER_MOVED = "moved"     # killed to learn a moved peer's address: does not count


@dataclasses.dataclass(frozen=True)
class Ended:
    """What the policy knows of one ended process."""

    task: TaskId
    code: int
    restarts: int                       # restarts of this task so far
    training_over: bool                 # the chief has saved the final checkpoint
    killed_for: Optional[str] = None    # the watchdog's verdict, when it killed the process
    killed_at_end: bool = False         # ... after the chief's final save
    restart_for: Optional[str] = None   # the launcher killed it to restart it (a peer moved)
    leaving: bool = False               # `launcher scale` asked it to leave


@dataclasses.dataclass(frozen=True)
class Decision:
    verdict: Verdict
    why: Optional[Why] = None  # for RESTART

    @property
    def out_of_restarts(self) -> bool:
        return self.verdict is Verdict.FAILED and self.why is not None


@dataclasses.dataclass(frozen=True)
class RestartRules:
    policy: RestartPolicy
    max_restarts: int

    def decide(self, ended: Ended) -> Decision:
        code, task = ended.code, ended.task
        if code == exit_codes.OK:
            return Decision(Verdict.DONE)
        if ended.leaving:
            return Decision(Verdict.NOT_NEEDED)  # asked to leave: however it ended, not a failure
        if ended.restart_for is not None:
            return Decision(Verdict.RESTART, Why.PEER_MOVED)
        if ended.killed_for is not None:
            if ended.killed_at_end or (ended.training_over and task.job == WORKER):
                return Decision(Verdict.NOT_NEEDED)
            return Decision(Verdict.RESTART if ended.restarts < self.max_restarts else Verdict.FAILED, Why.HUNG)
        if ended.training_over and task.job == WORKER:
            return Decision(Verdict.NOT_NEEDED)
        if self.policy.should_restart(code, ended.restarts, self.max_restarts):
            return Decision(Verdict.RESTART, Why.POLICY)
        if task.job == EVALUATOR and code != exit_codes.BAD_INPUT:
            return Decision(Verdict.EVALUATOR_FAILED)
        # Out of restarts only when the policy would have restarted it with some left.
        spent = exit_codes.is_retryable(code) and ended.restarts >= self.max_restarts
        return Decision(Verdict.FAILED, Why.POLICY if spent else None)
