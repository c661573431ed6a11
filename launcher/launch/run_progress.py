"""The run's progress as the loop sees it: the global step, its rate and its series over time (for
run.json), the stragglers, and the one-line progress display.

The line tells the truth when things go wrong: a chief, worker or evaluator that says nothing for
`SILENT_SECS` while it should be training (its node may be gone) is shown as silent, not as training; a
global step that goes back (a session that starts from an older checkpoint: the ps lost their variables)
is shown as a rollback, and the step as it is now, not held at its old value.
"""

from __future__ import annotations

from typing import Iterable, Optional

from launcher.cluster import status
from launcher.cluster.spec import CHIEF, PS, WORKER, TaskId
from launcher.launch import progress
from launcher.launch.events import Status
from launcher.launch.stragglers import Straggler, Stragglers
from launcher.launch.task_state import Phase, TaskState

SAMPLE_EVERY_SECS = 1.0
SILENT_SECS = 5.0  # tasks report their progress about once a second


class RunProgress:
    def __init__(self, train_steps: int, straggler_ratio: float):
        self.train_steps = train_steps
        self.global_step: Optional[int] = None
        self.rate = progress.Rate()
        self.stragglers = Stragglers(straggler_ratio)
        self._named: set[TaskId] = set()
        # (Unix time, global step) about once a second: the run's progress over time, for run.json.
        self.step_series: list[tuple[float, int]] = []
        self.rolled_back_from: Optional[int] = None  # the step before the last rollback, while not passed

    def apply(self, event: Status) -> bool:
        """Book `event`; whether the global step advanced."""
        advanced = False
        if event.kind == status.SESSION and event.step is not None and self.global_step is not None \
                and event.step < self.global_step:
            # A session that starts behind the run: restored from a checkpoint (only a restore lowers the
            # step; other tasks' late reports of older steps are not sessions).
            self.rolled_back_from = max(self.rolled_back_from or 0, self.global_step)
            self.global_step = event.step
            self.rate = progress.Rate()
            self._sample(event.wall)
            return True
        if event.global_step is not None:
            advanced = self.global_step is None or event.global_step > self.global_step
            self.global_step = max(event.global_step, self.global_step or 0)
            self.rate.add(self.global_step, event.mono)
            if self.rolled_back_from is not None and self.global_step > self.rolled_back_from:
                self.rolled_back_from = None
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
        shown = [s for s in states if s.member or s.running]  # workers that left are gone from the line
        workers = sum(1 for s in states if s.task.job == WORKER and s.member)
        text = progress.render(self.global_step, self.train_steps, self.rate.per_sec(),
                               [(s.task.name, _label(s, now)) for s in shown],
                               workers=workers, rolled_back_from=self.rolled_back_from)
        if slow:
            text += " | straggler " + ", ".join(f"{s.task} {s.ratio:.1f}x slower" for s in slow)
        return text, new


def _label(state: TaskState, now: float) -> str:
    """A task's state on the line: its phase, "silent Ns" when it should be reporting and is not, and
    "leaving" for a worker asked to leave that is still finishing."""
    if state.running and not state.member:
        return "leaving"
    attempt = state.attempts[-1] if state.attempts else None
    if state.running and state.phase is Phase.TRAINING and state.task.job != PS and attempt is not None \
            and not attempt.loop_done and attempt.heard_at is not None and now - attempt.heard_at >= SILENT_SECS:
        return f"silent {now - attempt.heard_at:.0f}s"
    return state.phase.value
