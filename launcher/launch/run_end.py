"""How a run ends: what becomes of a task process that ended, when the run is over, and its outcome.

- A task that exits 0 is done. A worker that ends after the chief's final checkpoint is not needed any more.
  A ps exits 0 only when the chief has told it, after the final checkpoint, that training is over: done,
  even if the launcher has not yet seen the chief's own exit (they end moments apart); should the chief be
  restarted after all, the supervisor starts such a ps again, since the new chief needs it.
- Otherwise the restart policy decides; what it does not restart has failed. A failed evaluator never
  stops training, but the run then ends failed. Any other failure ends the run, named after that task.
- A run succeeds once the chief is done, the workers have ended (each gets `worker_exit_secs` after the
  chief) and the evaluator has scored the final checkpoint (or `eval_wait_secs` passed).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Iterable, Optional

from launcher.cluster import exit_codes
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import EVALUATOR, WORKER, TaskId
from launcher.launch.task_state import TaskState

ERROR_PREFIX = "error: "


class Verdict(enum.Enum):
    DONE = "done"
    NOT_NEEDED = "not needed"
    RESTART = "restart"
    EVALUATOR_FAILED = "evaluator failed"
    FAILED = "failed"


def judge(task: TaskId, code: int, restarts: int, *, training_over: bool, policy: RestartPolicy,
          max_restarts: int) -> Verdict:
    """What becomes of `task`, whose process ended with `code` after `restarts` restarts."""
    if code == exit_codes.OK:
        return Verdict.DONE  # a ps too: see the module's note
    if training_over and task.job == WORKER:
        return Verdict.NOT_NEEDED  # the chief has saved the final checkpoint without it
    if policy.should_restart(code, restarts, max_restarts):
        return Verdict.RESTART
    # An evaluator's failure lets training go on, but not its bad input: the run was asked for wrongly.
    return Verdict.EVALUATOR_FAILED if task.job == EVALUATOR and code != exit_codes.BAD_INPUT else Verdict.FAILED


@dataclasses.dataclass(frozen=True)
class Failure:
    task: TaskId
    returncode: int
    tail: list[str]
    reason: Optional[str] = None  # what the launcher found, when that and not the exit is the cause
    cause: Optional[str] = None  # the root cause, when the log or the system names it (see root_cause)
    log: Optional[str] = None

    @property
    def bad_input(self) -> bool:
        return self.returncode == exit_codes.BAD_INPUT

    def message(self) -> str:
        """A bad input is the task's own one-line error; anything else, the exit and the end of its log."""
        if self.bad_input:
            error = next((line for line in reversed(self.tail) if line.startswith(ERROR_PREFIX)), None)
            if error is not None:
                return f"{error[len(ERROR_PREFIX):]} ({self.task} exited {self.returncode})"
        lines = [f"{self.task} {exit_codes.describe(self.returncode)}"
                 + (f"; {self.reason}" if self.reason else "") + (f": {self.cause}" if self.cause else "")]
        if self.cause:
            if self.log:
                lines.append(f"  (its whole output: {self.log})")
        elif self.tail:
            lines.append(f"last lines of {self.task}'s log:")
            lines += [f"  {line}" for line in self.tail]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Outcome:
    exit_code: int
    summary: str
    failure: Optional[Failure] = None

    @property
    def name(self) -> str:
        return {exit_codes.OK: "succeeded", exit_codes.PREEMPTED: "preempted", exit_codes.HUNG: "hung"}.get(
            self.exit_code, "interrupted" if self.exit_code > 128 else "failed")

    @classmethod
    def failed(cls, failure: Failure) -> Outcome:
        code = exit_codes.BAD_INPUT if failure.bad_input else exit_codes.TRAINING_FAILED
        return cls(code, failure.message(), failure)


def finished(states: Iterable[TaskState], since_chief_done: float, *, worker_exit_secs: float,
             eval_wait_secs: float) -> bool:
    """The chief is done: whether the workers and the evaluator's last score are in, or waited for enough."""
    states = list(states)
    workers_running = any(s.task.job == WORKER and s.running for s in states)
    if workers_running and since_chief_done < worker_exit_secs:
        return False
    # The evaluator exits by itself once it has scored the final checkpoint.
    evaluator_running = any(s.task.job == EVALUATOR and s.running for s in states)
    return not evaluator_running or since_chief_done >= eval_wait_secs
