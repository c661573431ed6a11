"""How a run ended: its outcome, and the failure that ended it when one did.

What becomes of an ended process and when a run is over are the supervisor's policies
(`policies.restart`, `policies.end_of_run`); this module holds what they lead to.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from launcher.cluster import exit_codes
from launcher.cluster.spec import TaskId

ERROR_PREFIX = "error: "


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

    @classmethod
    def trained(cls, train_steps: int, evaluator_failure: Optional[Failure], early_stop: Optional[dict],
                step: Optional[int]) -> Outcome:
        """A run whose training ended: at the target, or early; failed all the same if its evaluator did."""
        if evaluator_failure is not None:
            return cls(exit_codes.TRAINING_FAILED, f"training reached step {train_steps}, "
                       f"but the evaluator failed: {evaluator_failure.message()}", evaluator_failure)
        if early_stop is not None:
            return cls(exit_codes.OK, f"stopped early at step {step}: {early_stop['reason']}")
        return cls(exit_codes.OK, f"training reached step {train_steps}")
