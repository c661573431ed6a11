"""Looking into a hang before acting on it: probe every live task (process state, port), gather the
stacks into the logs, and explain (`diagnosis`). The supervisor's loop takes this as a parameter, so that
its decisions can be tested without processes to probe."""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

from launcher.cluster.spec import TaskId
from launcher.launch import diagnosis, stacks
from launcher.launch.diagnosis import Diagnosis
from launcher.launch.task_state import TaskState
from launcher.launch.watchdog import Alarm


@dataclasses.dataclass(frozen=True)
class Findings:
    diagnosis: Diagnosis
    stacks: dict[str, str]  # task name -> where its stacks are in its log ("path:line")

    def record(self, alarm: Alarm, action: str, detected: float, acted: float) -> dict:
        """The hang as run.json keeps it (under "hangs"); times are Unix seconds."""
        found = self.diagnosis
        return {"detected": detected, "time": acted, "verdict": found.verdict,
                "culprits": [t.name for t in found.culprits], "action": action, "end_of_run": alarm.end_of_run,
                "no_step_secs": None if alarm.no_step_secs is None else round(alarm.no_step_secs, 1),
                "step": alarm.step, "tasks": {p.task.name: p.record() for p in found.probes}, "stacks": self.stacks}


class Investigate(Protocol):
    def __call__(self, states: list[TaskState], alarm: Alarm, address_of: Callable[[TaskId], str],
                 hang_secs: float) -> Findings: ...


def investigate(states: list[TaskState], alarm: Alarm, address_of: Callable[[TaskId], str],
                hang_secs: float) -> Findings:
    probes = diagnosis.probe(states, alarm, address_of)
    dumps = stacks.gather(states, "the run hangs", native_for=diagnosis.culprits_of(alarm, probes))
    found = diagnosis.explain(alarm, probes, dumps, address_of, hang_secs)
    return Findings(found, {name: d.where for name, d in dumps.items() if d.where})
