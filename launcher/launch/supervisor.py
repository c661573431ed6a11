"""Supervision of one run: start every task, restart what the policy allows, and end the run.

The same for every backend. A run ends in one of three ways (see `run_end`):
- succeeded: the chief and every worker exited 0 (and the evaluator scored the final checkpoint);
- failed: a task failed for good (a permanent error, or its restarts ran out); the root cause is the
  earliest such failure, named with the end of its log, or with its own error line for a bad input;
- stopped by a signal to the launcher (SIGTERM: preempted; SIGINT, SIGHUP): the tasks are asked to stop,
  the chief saves a checkpoint at the step it reached, and the ps tasks, which hold the variables, are
  stopped only after the chief and workers have exited; a second signal kills them at once.
In every case every task process is gone when `run()` returns: SIGTERM, then SIGKILL after the grace.

Tasks start gated (`task_env.GATED`): each checks its own flags and reports READY, and none trains or
writes before every task has, so a bad flag anywhere is refused before a checkpoint is touched.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable, Optional

from launcher.cluster import contacts, exit_codes, status, task_env
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import CHIEF, EVALUATOR, PS, WORKER, ClusterSpec, TaskId
from launcher.cluster.stop_signals import StopRequest
from launcher.launch import diagnosis, progress, root_cause, run_end, stacks
from launcher.launch.backends import Backend, Move, PlacementError
from launcher.launch.console import Console
from launcher.launch.run_end import Failure, Outcome, Verdict
from launcher.launch.task_output import TaskOutput
from launcher.launch.task_state import Attempt, Phase, TaskState
from launcher.launch.stragglers import Stragglers
from launcher.launch.watchdog import Alarm, Watchdog

POLL_SECS = 0.1
PROGRESS_EVERY_SECS = 0.5
KILL_WAIT_SECS = 60.0
# Stop order: tasks that save or need the variables first, the ps that hold them last.
_STOP_WAVES = ((CHIEF, WORKER, EVALUATOR), (PS,))


class Supervisor:
    def __init__(self, spec: ClusterSpec, backend: Backend, console: Console,
                 command: Callable[[TaskId], list[str]], env: Callable[[TaskId, ClusterSpec], dict[str, str]],
                 make_output: Callable[[TaskId, Callable[[TaskId, dict], None]], TaskOutput], *,
                 train_steps: int, policy: RestartPolicy, max_restarts: int, grace_secs: float,
                 worker_exit_secs: float, stop: StopRequest, launched: Optional[float] = None,
                 eval_wait_secs: float = 120.0, hang_secs: float = 120.0, on_hang: str = "restart",
                 straggler_ratio: float = 3.0):
        self.spec = spec  # changes when a task moves to another node
        self._backend = backend
        self._console = console
        self._command = command
        self._env = env
        self._train_steps = train_steps
        self._policy = policy
        self._max_restarts = max_restarts
        self._grace_secs = grace_secs
        self._worker_exit_secs = worker_exit_secs
        self._eval_wait_secs = eval_wait_secs
        self._stop = stop
        self._lock = threading.Lock()
        self.states = {t: TaskState(t, make_output(t, self._on_status)) for t in spec.tasks()}
        self._gate_open = False
        self._moved_ahead: dict[TaskId, Move] = {}  # moved with another task of its lost node, not restarted yet
        self._evaluator_failure: Optional[Failure] = None
        self.early_stop: Optional[dict] = None  # the evaluator ended training early: when and why
        self.launched = launched if launched is not None else time.time()  # "seconds from launch" start here
        self._global_step: Optional[int] = None
        self._rate = progress.Rate()
        self._watchdog = Watchdog(hang_secs)
        self._on_hang = on_hang
        self.hangs: list[dict] = []  # for run.json: each hang, its verdict and what was done
        self.stragglers = Stragglers(straggler_ratio)
        self._named_stragglers: set = set()
        # (Unix time, global step) about once a second: the run's progress over time, for run.json.
        self.step_series: list[tuple[float, int]] = []

    # -- status lines from tasks (called on output threads) --

    def _on_status(self, task: TaskId, event: dict) -> None:
        with self._lock:
            state = self.states[task]
            state.on_status(event)
            if event.get("event") == status.READY:
                self._open_gate(state)
            elif event.get("event") == status.EARLY_STOP and self.early_stop is None:
                self.early_stop = {"evaluated_step": event.get("step"), "reason": event.get("reason")}
                for other in self.states.values():
                    if other.task.job in (CHIEF, WORKER) and other.running:
                        other.handle.signal(task_env.FINISH_SIGNAL)
            step = event.get("step")
            if isinstance(step, int) and event.get("event") != status.EVAL:
                self._global_step = max(step, self._global_step or 0)
                self._rate.add(self._global_step)
                self._sample_step()
                self._watchdog.step(self._global_step, time.monotonic())
            if event.get("event") == status.PROGRESS and isinstance(event.get("local_steps"), int) \
                    and task.job in (CHIEF, WORKER):
                self.stragglers.add(task, event["local_steps"], time.monotonic())
            elif event.get("event") == status.DONE:
                self.stragglers.forget(task)

    def _sample_step(self, every_secs: float = 1.0) -> None:
        """Keep samples about `every_secs` apart; the last one is always the newest step."""
        sample = (time.time(), self._global_step)
        if len(self.step_series) >= 2 and sample[0] - self.step_series[-2][0] < every_secs:
            self.step_series[-1] = sample
        else:
            self.step_series.append(sample)

    def _open_gate(self, state: Optional[TaskState] = None) -> None:
        """Let `state`'s process go on once every task has reported READY (a restarted one: at once), or
        has failed without stopping the run (an evaluator); with no `state`, check whether that is so now.

        GO goes only to a process that has reported READY: before that it has no handler for the signal,
        whose default action would end it (so would a GO after its handler is gone, at its exit)."""
        if self._gate_open:
            if state is not None:
                state.attempts[-1].go_at = time.monotonic()
                state.handle.signal(task_env.GO_SIGNAL)
            return
        if all(s.ready or s.phase is Phase.FAILED for s in self.states.values()):
            self._gate_open = True
            self._watchdog.arm(time.monotonic())
            for other in self.states.values():
                if other.running and other.ready:
                    other.attempts[-1].go_at = time.monotonic()
                    other.handle.signal(task_env.GO_SIGNAL)

    # -- the run --

    def run(self) -> Outcome:
        try:
            for task in sorted(self.states, key=lambda t: t.job != PS):  # servers first
                if self._stop.requested:
                    break  # a signal while the run was being prepared: start nothing more
                self._start(self.states[task])
            return self._watch()
        finally:
            self._stop_all()
            self._console.close()

    def _start(self, state: TaskState) -> None:
        with self._lock:
            self.stragglers.restart(state.task)
        move = self._moved_ahead.pop(state.task, None)
        if move is None and state.attempts:
            move = self._backend.relocate(state.task)
            if move is not None:
                self._moved(state, move)
        argv = self._command(state.task)
        state.attempts.append(Attempt(started=time.time(), argv=argv, host=self.spec.address(state.task).host,
                                      moved=None if move is None else
                                      {"from": move.old_host, "to": move.address.host, "why": move.why}))
        state.output.begin(len(state.attempts), argv)
        state.started(self._backend.start(state.task, argv, self._env(state.task, self.spec), state.output.write))

    def _restart(self, state: TaskState) -> Optional[Failure]:
        try:
            self._start(state)
        except PlacementError as e:
            state.phase = Phase.FAILED
            return Failure(state.task, state.attempts[-1].exit_code, state.output.tail(), reason=str(e))
        return None

    def _moved(self, state: TaskState, move: Move) -> None:
        """`state`'s task runs at a new address from now on: every running task that connects to it must
        restart to learn it (TensorFlow fixes a server's cluster at start). The other tasks of the same
        lost node move now too, before Ray has told their handles, so that the others restart only once."""
        moves = {state.task: move}
        for other in self.states.values():
            if other.running and other.task not in moves and self.spec.address(other.task).host == move.old_host:
                ahead = self._backend.relocate(other.task)  # raises PlacementError: the run cannot go on
                if ahead is not None:
                    moves[other.task] = self._moved_ahead[other.task] = ahead
        self.spec = self.spec.replace_addresses({task: m.address for task, m in moves.items()})
        for task, m in moves.items():
            self._console.line(f"[launcher] {task} moves from {m.old_host} to {m.address} ({m.why})")
        for task in moves:
            if task != state.task:
                self.states[task].restart_for = f"its node {moves[task].old_host} was lost"
                self.states[task].handle.signal(signal.SIGKILL)
        learners = [s for s in self.states.values() if s.running and s.task not in moves
                    and any(contacts.must_learn(task, s.task) for task in moves)]
        if learners:
            self._console.line(f"[launcher] restarting {', '.join(str(s.task) for s in learners)} to learn "
                               "the new address" + ("es" if len(moves) > 1 else ""))
        for other in learners:
            other.restart_for = f"{', '.join(str(t) for t in moves)} moved"
            other.handle.signal(signal.SIGKILL)  # whatever it did since the last checkpoint is redone

    def _watch(self) -> Outcome:
        last_progress = 0.0
        chief_done_at: Optional[float] = None
        while True:
            if self._stop.requested:
                return self._stopped_by_signal()
            for state in self.states.values():
                if not state.running:
                    continue
                code = state.handle.poll()
                if code is None:
                    continue
                failure = self._ended(state, code, training_over=chief_done_at is not None)
                if failure is not None:
                    for other in self.states.values():
                        other.output.mute()  # what the others say while stopped is consequence, not cause
                    self._stop_all()
                    return Outcome.failed(failure)
            if chief_done_at is None and self.states[TaskId(CHIEF, 0)].phase is Phase.DONE:
                chief_done_at = time.monotonic()
            if chief_done_at is not None and run_end.finished(
                    self.states.values(), time.monotonic() - chief_done_at,
                    worker_exit_secs=self._worker_exit_secs, eval_wait_secs=self._eval_wait_secs):
                if self._evaluator_failure is not None:
                    return Outcome(exit_codes.TRAINING_FAILED, f"training reached step {self._train_steps}, "
                                   f"but the evaluator failed: {self._evaluator_failure.message()}",
                                   self._evaluator_failure)
                given_up = [s.task.name for s in self.states.values() if s.task.job == WORKER and s.running]
                if given_up:
                    self._console.line(f"[launcher] gave up waiting for {', '.join(given_up)} after the chief's "
                                       f"final save ({self._worker_exit_secs:.0f} s); stopping")
                self._show_progress(force=True)
                if self.early_stop is not None:
                    return Outcome(exit_codes.OK, f"stopped early at step {self._global_step}: "
                                                  f"{self.early_stop['reason']}")
                return Outcome(exit_codes.OK, f"training reached step {self._train_steps}")
            if time.monotonic() - last_progress >= PROGRESS_EVERY_SECS:
                last_progress = time.monotonic()
                self._show_progress()
                self._watch_memory()
                with self._lock:
                    alarm = self._watchdog.check(self.states.values(), time.monotonic())
                if alarm is not None:
                    outcome = self._on_alarm(alarm)
                    if outcome is not None:
                        return outcome
            time.sleep(POLL_SECS)

    def _ended(self, state: TaskState, code: int, training_over: bool) -> Optional[Failure]:
        """Book a process that ended and act on its verdict. A Failure ends the run."""
        state.ended(code)
        if state.restart_for is not None and code != exit_codes.OK:
            reason, state.restart_for = state.restart_for, None
            self._console.line(f"[launcher] {state.task} restarting: {reason}")
            return self._restart(state)
        attempt = state.attempts[-1]
        killed_for = attempt.killed_for
        if code != exit_codes.OK and not killed_for:
            attempt.cause = root_cause.find(state.output.attempt_lines(), code, attempt.local_pid, attempt.memory,
                                            str(self.spec.address(state.task)))
        verdict = run_end.judge(state.task, code, state.restarts, training_over=training_over,
                                policy=self._policy, max_restarts=self._max_restarts)
        if killed_for and state.attempts[-1].killed_at_end:
            verdict = Verdict.NOT_NEEDED  # the chief had saved the final step: nothing left for it to do
        elif killed_for and verdict is not Verdict.NOT_NEEDED:
            # Killed by the watchdog: restarted like any other kill, whatever the policy, while restarts last.
            verdict = Verdict.RESTART if state.restarts < self._max_restarts else Verdict.FAILED
        if verdict is Verdict.DONE:
            state.phase = Phase.DONE
        elif verdict is Verdict.NOT_NEEDED:
            state.phase = Phase.STOPPED
        elif verdict is Verdict.RESTART:
            why = "killed: it hung" if killed_for else exit_codes.describe(code) + (
                f": {attempt.cause}" if attempt.cause else "")
            self._console.line(f"[launcher] {state.task} {why}; restarting "
                               f"({state.restarts + 1}/{self._max_restarts})")
            if state.task.job == CHIEF:
                self._restart_released_ps()
            return self._restart(state)
        else:
            state.phase = Phase.FAILED
            failure = Failure(state.task, code, state.output.tail(),
                              cause=f"killed after it hung ({killed_for})" if killed_for else attempt.cause,
                              log=state.output.path)
            if verdict is Verdict.EVALUATOR_FAILED:
                self._evaluator_failure = failure
                self._console.line(f"[launcher] {state.task} {exit_codes.describe(code)}; training goes on")
                with self._lock:
                    self._open_gate()  # the others may have been waiting only for it
                return None
            if exit_codes.is_retryable(code) and state.restarts >= self._max_restarts:
                self._console.line(f"[launcher] {state.task} {exit_codes.describe(code)}; "
                                   f"no restarts left ({self._max_restarts} used)")
            return failure
        return None

    def _watch_memory(self) -> None:
        """Note where each running task's OOM kills are counted (a task may be moved into a cgroup)."""
        for state in self.states.values():
            pid = state.local_pid if state.running else None
            if pid is not None:
                attempt = state.attempts[-1]
                attempt.local_pid = pid  # kept: once it has ended, the kernel log names it by this pid
                watch = root_cause.MemoryWatch.of(pid)
                if watch.events and (attempt.memory is None or attempt.memory.events != watch.events):
                    attempt.memory = watch

    def _on_alarm(self, alarm: Alarm) -> Optional[Outcome]:
        """Explain a hang (stacks, ports, process states: a verdict), then act as --on_hang says."""
        states = list(self.states.values())

        def address_of(task: TaskId) -> str:
            return str(self.spec.address(task))

        detected = time.time()
        probes = diagnosis.probe(states, alarm, address_of)
        dumps = stacks.gather(states, "the run hangs", native_for=diagnosis.culprits_of(alarm, probes))
        found = diagnosis.explain(alarm, probes, dumps, address_of, self._watchdog.hang_secs)
        action = "report" if self._on_hang == "report" else "abort" if self._on_hang == "abort" else "restart"
        if alarm.end_of_run:
            # Training is over and the chief waits for these workers' last reports before its final save:
            # the watchdog bounds that wait whatever --on_hang says; they are stopped, not restarted.
            action = "stop"
        where = {name: d.where for name, d in dumps.items() if d.where}
        self.hangs.append({
            "detected": detected, "time": time.time(), "verdict": found.verdict, "culprits": [t.name for t in found.culprits],
            "action": action, "end_of_run": alarm.end_of_run,
            "no_step_secs": None if alarm.no_step_secs is None else round(alarm.no_step_secs, 1),
            "step": alarm.step, "tasks": {p.task.name: p.record() for p in found.probes}, "stacks": where})
        self._console.line(f"[launcher] {found.verdict}")
        culprit_logs = [where[t.name] for t in found.culprits if t.name in where]
        if culprit_logs:
            self._console.line(f"[launcher] stacks: {', '.join(culprit_logs)}")
        self._watchdog.arm(time.monotonic())  # whatever is done, give it hang_secs before the next verdict
        if action == "abort":
            self._console.line("[launcher] --on_hang abort: stopping every task (the chief saves a checkpoint "
                               "if it can)")
            self._stop_all()
            return Outcome(exit_codes.HUNG, found.verdict)
        if action in ("restart", "stop"):
            for task in found.culprits:
                state = self.states[task]
                if state.running and task.job != EVALUATOR:
                    state.attempts[-1].killed_for = found.verdict
                    state.attempts[-1].killed_at_end = alarm.end_of_run
                    state.handle.signal(signal.SIGKILL)
        else:
            self._console.line("[launcher] --on_hang report: nothing done; training may stay stuck")
        return None

    def _restart_released_ps(self) -> None:
        """A chief that released its ps (they exited 0) and then died before its own exit 0: the chief that
        replaces it needs ps servers again; they get the variables back from its restore."""
        for other in self.states.values():
            if other.task.job == PS and other.phase is Phase.DONE:
                self._console.line(f"[launcher] {other.task} had ended after the chief's release; starting it "
                                   "again for the restarted chief")
                self._start(other)

    def _stopped_by_signal(self) -> Outcome:
        self._console.line(f"[launcher] received {self._stop.name}: stopping every task "
                           "(the chief saves a checkpoint)")
        self._stop_all()
        return Outcome(self._stop.exit_code, f"stopped by {self._stop.name}")

    def _stop_all(self) -> None:
        """SIGTERM in waves (chief and workers, then ps), then SIGKILL whatever outlives the grace; a
        second stop signal to the launcher cuts the grace short."""
        for wave in _STOP_WAVES:
            states = [s for s in self.states.values() if s.task.job in wave and s.running]
            for state in states:
                state.handle.signal(signal.SIGTERM)
                state.handle.signal(signal.SIGCONT)  # a stopped task handles its SIGTERM only once resumed
            deadline = time.monotonic() + self._grace_secs
            for state in states:
                while state.handle.poll() is None and time.monotonic() < deadline and not self._stop.hurried:
                    time.sleep(POLL_SECS)
                if state.handle.poll() is None:
                    state.handle.signal(signal.SIGKILL)
                    # Bounded too: a task on a silent node may not hear the signal; its backend says
                    # within KILL_WAIT_SECS when the node is declared lost.
                    killed = time.monotonic()
                    while state.handle.poll() is None and time.monotonic() - killed < KILL_WAIT_SECS:
                        time.sleep(POLL_SECS)
                    if state.handle.poll() is None:
                        self._console.line(f"[launcher] {state.task} did not confirm its end within "
                                           f"{KILL_WAIT_SECS:g}s (its node does not answer); leaving it")
                state.ended(state.handle.poll() if state.handle.poll() is not None else -9)
                state.phase = Phase.STOPPED
        for state in self.states.values():
            state.output.close()

    def _show_progress(self, force: bool = False) -> None:
        with self._lock:
            for state in self.states.values():
                if not state.running:
                    self.stragglers.forget(state.task)
            slow = self.stragglers.check(time.monotonic(), time.time())
            for straggler in slow:
                if straggler.task not in self._named_stragglers:
                    self._named_stragglers.add(straggler.task)
                    self._console.line(f"[launcher] straggler: {straggler.task} steps {straggler.ratio:.1f}x slower "
                                       f"than the median of its peers (reported, not stopped)")
            line = progress.render(self._global_step, self._train_steps, self._rate.per_sec(),
                                   [(s.task.name, s.phase.value) for s in self.states.values()])
            if slow:
                line += " | straggler " + ", ".join(f"{s.task} {s.ratio:.1f}x slower" for s in slow)
        self._console.progress(line, force=force)
