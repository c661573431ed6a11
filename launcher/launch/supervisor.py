"""Supervision of one run: start every task, restart what the policy allows, and end the run.

The same for every backend. A run ends in one of four ways:
- succeeded: the chief and every worker exited 0 (and the evaluator scored the final checkpoint);
- failed: a task failed for good (a permanent error, or its restarts ran out); the root cause is the
  earliest such failure, named with the end of its log;
- stopped by a signal to the launcher (SIGTERM: preempted; SIGINT, SIGHUP): the tasks are asked to stop,
  the chief saves a checkpoint at the step it reached, and the ps tasks, which hold the variables, are
  stopped only after the chief and workers have exited;
- in every case every task process is gone when `run()` returns: SIGTERM, then SIGKILL after the grace.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from typing import Callable, Optional

from launcher.cluster import exit_codes, status
from launcher.launch import progress
from launcher.launch.backends import Backend, TaskHandle
from launcher.launch.console import Console
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import CHIEF, EVALUATOR, PS, WORKER, ClusterSpec, TaskId
from launcher.launch.task_output import TaskOutput

POLL_SECS = 0.1
PROGRESS_EVERY_SECS = 0.5
# Stop order: tasks that save or need the variables first, the ps that hold them last.
_STOP_WAVES = ((CHIEF, WORKER, EVALUATOR), (PS,))


@dataclasses.dataclass
class Attempt:
    """One process of a task. Times are Unix epoch seconds, comparable across processes and machines."""

    started: float
    first_step: Optional[float] = None
    sessions: list[tuple[float, int]] = dataclasses.field(default_factory=list)  # (time, global step)
    local_steps: int = 0
    ended: Optional[float] = None
    exit_code: Optional[int] = None

    def record(self) -> dict:
        return {"started": self.started, "first_step": self.first_step, "ended": self.ended,
                "exit_code": self.exit_code, "local_steps": self.local_steps,
                "sessions": [{"time": t, "step": step} for t, step in self.sessions]}


@dataclasses.dataclass
class TaskState:
    task: TaskId
    output: TaskOutput
    handle: Optional[TaskHandle] = None
    phase: str = "pending"
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    eval_step: Optional[int] = None
    eval_metrics: Optional[dict] = None

    @property
    def restarts(self) -> int:
        return max(len(self.attempts) - 1, 0)

    @property
    def running(self) -> bool:
        return self.handle is not None and self.phase not in ("done", "failed", "stopped")

    def ended(self, code: int) -> None:
        self.attempts[-1].exit_code, self.attempts[-1].ended = code, time.time()

    def record(self, launched: float) -> dict:
        sessions = [step for a in self.attempts for _, step in a.sessions]
        first_steps = [a.first_step for a in self.attempts if a.first_step is not None]
        return {"job": self.task.job, "index": self.task.index,
                "exit_code": self.attempts[-1].exit_code if self.attempts else None,
                "exit_codes": [a.exit_code for a in self.attempts], "restarts": self.restarts,
                "steps": sum(a.local_steps for a in self.attempts),
                "start_step": sessions[0] if sessions else None, "session_steps": sessions,
                "first_step_secs": round(first_steps[0] - launched, 3) if first_steps else None,
                "attempts": [a.record() for a in self.attempts]}


@dataclasses.dataclass(frozen=True)
class Failure:
    task: TaskId
    returncode: int
    tail: list[str]

    def message(self) -> str:
        lines = [f"{self.task} {exit_codes.describe(self.returncode)}"]
        if self.tail:
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
        return {exit_codes.OK: "succeeded", exit_codes.PREEMPTED: "preempted"}.get(
            self.exit_code, "interrupted" if self.exit_code > 128 else "failed")


class Supervisor:
    def __init__(self, spec: ClusterSpec, backend: Backend, console: Console,
                 command: Callable[[TaskId], list[str]], env: Callable[[TaskId], dict[str, str]],
                 make_output: Callable[[TaskId, Callable[[TaskId, dict], None]], TaskOutput], *,
                 train_steps: int, policy: RestartPolicy, max_restarts: int, grace_secs: float,
                 launched: Optional[float] = None, eval_wait_secs: float = 120.0):
        self._spec = spec
        self._backend = backend
        self._console = console
        self._command = command
        self._env = env
        self._train_steps = train_steps
        self._policy = policy
        self._max_restarts = max_restarts
        self._grace_secs = grace_secs
        self._eval_wait_secs = eval_wait_secs
        self._lock = threading.Lock()
        self.states = {t: TaskState(t, make_output(t, self._on_status)) for t in spec.tasks()}
        self._signal: Optional[int] = None
        self._evaluator_failure: Optional[Failure] = None
        self._hurry = False
        self.launched = launched if launched is not None else time.time()  # "seconds from launch" start here
        self._global_step: Optional[int] = None
        self._rate = progress.Rate()

    # -- status lines from tasks (called on output threads) --

    def _on_status(self, task: TaskId, event: dict) -> None:
        with self._lock:
            state = self.states[task]
            attempt = state.attempts[-1]
            kind, step = event.get("event"), event.get("step")
            if kind == status.SESSION:
                state.phase = "training"
                attempt.sessions.append((time.time(), step))
            elif kind == status.FIRST_STEP:
                attempt.first_step = time.time()
            elif kind in (status.PROGRESS, status.DONE):
                attempt.local_steps = event.get("local_steps", attempt.local_steps)
            elif kind == status.EVAL:
                state.eval_step, state.eval_metrics = step, event.get("metrics")
            if isinstance(step, int) and kind != status.EVAL:
                self._global_step = max(step, self._global_step or 0)
                self._rate.add(self._global_step)

    # -- the run --

    def _on_signal(self, signum: int, frame) -> None:
        if self._signal is None:
            self._signal = signum
        else:
            self._hurry = True  # asked twice: no more grace, SIGKILL now

    def run(self) -> Outcome:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            for task in sorted(self.states, key=lambda t: t.job != PS):  # servers first
                self._start(self.states[task])
            return self._watch()
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._console.close()

    def _start(self, state: TaskState) -> None:
        state.attempts.append(Attempt(started=time.time()))
        argv = self._command(state.task)
        state.output.begin(len(state.attempts), argv)
        state.handle = self._backend.start(state.task, argv, self._env(state.task), state.output.write)
        state.phase = "serving" if state.task.job == PS else "starting"

    def _watch(self) -> Outcome:
        last_progress = 0.0
        chief_done_at: Optional[float] = None
        while True:
            if self._signal is not None:
                return self._stopped_by_signal()
            for state in self.states.values():
                if not state.running:
                    continue
                code = state.handle.poll()
                if code is None:
                    continue
                failure = self._ended(state, code, training_over=chief_done_at is not None)
                if failure is not None:
                    self._stop_all()
                    return Outcome(exit_codes.BAD_INPUT if failure.returncode == exit_codes.BAD_INPUT
                                   else exit_codes.TRAINING_FAILED, failure.message(), failure)
            if chief_done_at is None and self.states[TaskId(CHIEF, 0)].phase == "done":
                chief_done_at = time.monotonic()
            if chief_done_at is not None and self._finished(chief_done_at):
                if self._evaluator_failure is not None:
                    return Outcome(exit_codes.TRAINING_FAILED, f"training reached step {self._train_steps}, "
                                   f"but the evaluator failed: {self._evaluator_failure.message()}",
                                   self._evaluator_failure)
                self._show_progress(force=True)
                return Outcome(exit_codes.OK, f"training reached step {self._train_steps}")
            if time.monotonic() - last_progress >= PROGRESS_EVERY_SECS:
                last_progress = time.monotonic()
                self._show_progress()
            time.sleep(POLL_SECS)

    def _ended(self, state: TaskState, code: int, training_over: bool) -> Optional[Failure]:
        """Book a process that ended; restart it if the policy says so. A Failure ends the run."""
        state.ended(code)
        if code == exit_codes.OK and state.task.job in (CHIEF, WORKER, EVALUATOR):
            state.phase = "done"
            return None
        if training_over and state.task.job == WORKER:
            state.phase = "stopped"  # the chief has saved the final checkpoint; this worker is not needed
            return None
        if self._policy.should_restart(code, state.restarts, self._max_restarts):
            self._console.line(f"[launcher] {state.task} {exit_codes.describe(code)}; restarting "
                               f"({state.restarts + 1}/{self._max_restarts})")
            self._start(state)
            return None
        state.phase = "failed"
        if state.task.job == EVALUATOR:  # the evaluator never stops training; the run ends failed
            self._evaluator_failure = Failure(state.task, code, state.output.tail())
            self._console.line(f"[launcher] {state.task} {exit_codes.describe(code)}; training goes on")
            return None
        if code != exit_codes.OK and exit_codes.is_retryable(code) and state.restarts >= self._max_restarts:
            self._console.line(f"[launcher] {state.task} {exit_codes.describe(code)}; "
                               f"no restarts left ({self._max_restarts} used)")
        return Failure(state.task, code, state.output.tail())

    def _finished(self, chief_done_at: float) -> bool:
        """The chief is done: wait for the workers (and the evaluator's last score), bounded."""
        waited = time.monotonic() - chief_done_at
        workers = [s for s in self.states.values() if s.task.job == WORKER and s.running]
        if workers and waited < self._grace_secs:
            return False
        evaluator = self.states.get(TaskId(EVALUATOR, 0))
        # The evaluator exits by itself once it has scored the final checkpoint.
        return evaluator is None or not evaluator.running or waited >= self._eval_wait_secs

    def _stopped_by_signal(self) -> Outcome:
        name = signal.Signals(self._signal).name
        self._console.line(f"[launcher] received {name}: stopping every task (the chief saves a checkpoint)")
        self._stop_all()
        code = exit_codes.PREEMPTED if self._signal == signal.SIGTERM else 128 + self._signal
        return Outcome(code, f"stopped by {name}")

    def _stop_all(self) -> None:
        """SIGTERM in waves (chief and workers, then ps), then SIGKILL whatever outlives the grace."""
        for wave in _STOP_WAVES:
            states = [s for s in self.states.values() if s.task.job in wave and s.running]
            for state in states:
                state.handle.signal(signal.SIGTERM)
            deadline = time.monotonic() + self._grace_secs
            for state in states:
                while state.handle.poll() is None and time.monotonic() < deadline and not self._hurry:
                    time.sleep(POLL_SECS)
                if state.handle.poll() is None:
                    state.handle.signal(signal.SIGKILL)
                    while state.handle.poll() is None:
                        time.sleep(POLL_SECS)
                state.ended(state.handle.poll())
                state.phase = "stopped"
        for state in self.states.values():
            state.output.close()

    def _show_progress(self, force: bool = False) -> None:
        with self._lock:
            line = progress.render(self._global_step, self._train_steps, self._rate.per_sec(),
                                   [(s.task.name, s.phase) for s in self.states.values()])
        self._console.progress(line, force=force)
