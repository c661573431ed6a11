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


class Investigate(Protocol):
    def __call__(self, states: list[TaskState], alarm: Alarm, address_of: Callable[[TaskId], str],
                 hang_secs: float) -> Findings: ...


def investigate(states: list[TaskState], alarm: Alarm, address_of: Callable[[TaskId], str],
                hang_secs: float) -> Findings:
    probes = diagnosis.probe(states, alarm, address_of)
    dumps = stacks.gather(states, "the run hangs", native_for=diagnosis.culprits_of(alarm, probes))
    found = diagnosis.explain(alarm, probes, dumps, address_of, hang_secs)
    return Findings(found, {name: d.where for name, d in dumps.items() if d.where})
