"""The run's progress as the loop sees it: the global step, its rate and its series over time (for
run.json), the stragglers, and the one-line progress display."""

from __future__ import annotations

from typing import Iterable, Optional

from launcher.cluster import status
from launcher.cluster.spec import CHIEF, WORKER, TaskId
from launcher.launch import progress
from launcher.launch.events import Status
from launcher.launch.stragglers import Straggler, Stragglers
from launcher.launch.task_state import TaskState

SAMPLE_EVERY_SECS = 1.0


class RunProgress:
    def __init__(self, train_steps: int, straggler_ratio: float):
        self.train_steps = train_steps
        self.global_step: Optional[int] = None
        self.rate = progress.Rate()
        self.stragglers = Stragglers(straggler_ratio)
        self._named: set[TaskId] = set()
        # (Unix time, global step) about once a second: the run's progress over time, for run.json.
        self.step_series: list[tuple[float, int]] = []

    def apply(self, event: Status) -> bool:
        """Book `event`; whether the global step advanced."""
        advanced = False
        if event.global_step is not None:
            advanced = self.global_step is None or event.global_step > self.global_step
            self.global_step = max(event.global_step, self.global_step or 0)
            self.rate.add(self.global_step, event.mono)
            self._sample(event.wall)
        if event.kind == status.PROGRESS and event.local_steps is not None and event.task.job in (CHIEF, WORKER):
            self.stragglers.add(event.task, event.local_steps, event.mono)
        elif event.kind == status.DONE:
            self.stragglers.forget(event.task)
        return advanced

    def _sample(self, wall: float) -> None:
        """Keep samples about SAMPLE_EVERY_SECS apart; the last one is always the newest step."""
        sample = (wall, self.global_step)
        if len(self.step_series) >= 2 and sample[0] - self.step_series[-2][0] < SAMPLE_EVERY_SECS:
            self.step_series[-1] = sample
        else:
            self.step_series.append(sample)

    def line(self, states: Iterable[TaskState], now: float, wall: float) -> tuple[str, list[Straggler]]:
        """The progress line, and the stragglers named for the first time (to be said once)."""
        states = list(states)
        for state in states:
            if not state.running:
                self.stragglers.forget(state.task)
        slow = self.stragglers.check(now, wall)
        new = [s for s in slow if s.task not in self._named]
        self._named.update(s.task for s in new)
        text = progress.render(self.global_step, self.train_steps, self.rate.per_sec(),
                               [(s.task.name, s.phase.value) for s in states])
        if slow:
            text += " | straggler " + ", ".join(f"{s.task} {s.ratio:.1f}x slower" for s in slow)
        return text, new
