"""The run-level watchdog: notices that training stopped making progress while processes live on.

Three signs, each held for `hang_secs`:
- the global step has not advanced (no task of the cluster trains);
- a chief or worker that has a session has sent no status line (tasks report about once a second while
  they step, so silence means it does not step: stopped, deadlocked, blocked in its input);
- a chief or worker sits in session creation (waiting for a peer that does not answer).
Clocks start when the launcher lets tasks past the start gate and restart after each action of the
launcher, so the tasks that waited on a restarted culprit get time to recover before they count as hung.
Detection only: `diagnosis` explains an alarm, the supervisor acts on it.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

from launcher.cluster.spec import CHIEF, WORKER, TaskId
from launcher.launch.task_state import Phase, TaskState


@dataclasses.dataclass(frozen=True)
class Silence:
    task: TaskId
    secs: float
    in_session_creation: bool


@dataclasses.dataclass(frozen=True)
class Alarm:
    silent: tuple[Silence, ...]          # chief/worker tasks that went silent, longest first
    quiet: tuple[Silence, ...]           # every chief/worker with a session or waiting for one, and its silence
    no_step_secs: Optional[float]        # seconds without a global step, when that is over the limit
    step: Optional[int]                  # the global step reached
    end_of_run: bool                     # the chief ended its loop and waits for the workers

    def silence(self, task: TaskId) -> Optional[Silence]:
        return next((s for s in self.quiet if s.task == task), None)


class Watchdog:
    def __init__(self, hang_secs: float):
        self.hang_secs = hang_secs
        self._armed_at: Optional[float] = None  # gate opened, or the launcher last acted
        self._step: Optional[int] = None
        self._step_at: Optional[float] = None

    def arm(self, now: float) -> None:
        """Start (or restart, after an action) every clock from `now`."""
        self._armed_at = now

    def step(self, step: int, now: float) -> None:
        """The global step reached `step`: a new one, or a lower one (a rollback restarts the count)."""
        if self._step is None or step != self._step:
            self._step, self._step_at = step, now

    def check(self, states: Iterable[TaskState], now: float) -> Optional[Alarm]:
        if self._armed_at is None:
            return None  # tasks are still importing and checking flags: not this watchdog's business
        states = list(states)
        # Once the chief has ended its loop, it waits for the workers' last reports before its final save.
        chief_done = any(s.task.job == CHIEF and (s.phase is Phase.DONE or (s.attempts and s.attempts[-1].loop_done))
                         for s in states)
        silent, quiet = [], []
        training = False
        for state in states:
            if state.task.job not in (CHIEF, WORKER) or not state.running or not state.attempts or not state.member:
                continue  # (a worker asked to leave is the supervisor's to end, see Supervisor._hurry_leavers)
            attempt = state.attempts[-1]
            if attempt.go_at is None or attempt.loop_done or state.phase not in (Phase.STARTING, Phase.TRAINING):
                continue  # not let go yet, or done with its loop (saving, waiting for others: not a hang)
            training = True
            since = max(attempt.heard_at or attempt.go_at, attempt.go_at, self._armed_at)
            quiet.append(Silence(state.task, now - since, state.phase is Phase.STARTING))
            if now - since >= self.hang_secs:
                silent.append(quiet[-1])
        no_step = None
        if training and not chief_done:
            since = max(self._step_at or self._armed_at, self._armed_at)
            if now - since >= self.hang_secs:
                no_step = now - since
        if not silent and no_step is None:
            return None
        silent.sort(key=lambda s: -s.secs)
        return Alarm(tuple(silent), tuple(quiet), no_step, self._step, chief_done)
