"""Supervision of one run: one loop that alone owns every task's state, the same for every backend.

Each pass of the loop (`_step`) polls the processes, applies the events the output threads queued
(`events`: they only parse status lines), then asks each policy (`policies`) for a decision and carries
it out: what becomes of an ended process (`restart`), who passes the start gate (`gate`), what an early
stop finishes (`early_stop`), whom the end of the run gives up on and whether it is over (`end_of_run`),
and what to do about a hang (`hang`, after `watchdog` raised an alarm). The clock and the backend are
passed in, so the loop runs against fakes in tests (tests/test_supervisor_loop.py).

A run ends in one of three ways (`run_end.Outcome`): succeeded, failed (the earliest failure for good,
named with its root cause), or stopped by a signal to the launcher (the tasks are asked to stop, the chief
saves; a second signal kills them at once). In every case every task process is gone when `run()`
returns (`stop_waves`). See docs/architecture.md.
"""

from __future__ import annotations

import queue
import signal
from typing import Callable, Optional

from launcher.cluster import exit_codes, settings, status, task_env
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import CHIEF, PS, WORKER, ClusterSpec, TaskId
from launcher.cluster.stop_signals import StopRequest
from launcher.launch import events, node_moves, root_cause, scale_requests, stop_waves
from launcher.launch.backends import Backend, Move, PlacementError, resolve_added
from launcher.launch.clock import Clock, SystemClock
from launcher.launch.console import Console
from launcher.launch.hang_investigation import Investigate, investigate
from launcher.launch.policies import early_stop, end_of_run, gate, hang, scale
from launcher.launch.policies.restart import Decision, Ended, RestartRules, Verdict, Why
from launcher.launch.run_end import Failure, Outcome
from launcher.launch.run_progress import RunProgress
from launcher.launch.task_output import TaskOutput
from launcher.launch.task_state import Attempt, Phase, TaskState
from launcher.launch.watchdog import Alarm, Silence, Watchdog

POLL_SECS = 0.1
PROGRESS_EVERY_SECS = 0.5
CHIEF_0 = TaskId(CHIEF, 0)


class Supervisor:
    def __init__(self, spec: ClusterSpec, backend: Backend, console: Console,
                 command: Callable[[TaskId], list[str]], env: Callable[[TaskId, ClusterSpec], dict[str, str]],
                 make_output: Callable[[TaskId, Callable[[TaskId, dict], None]], TaskOutput], *,
                 train_steps: int, policy: RestartPolicy, max_restarts: int, grace_secs: float,
                 worker_exit_secs: float, stop: StopRequest, launched: Optional[float] = None,
                 eval_wait_secs: float = settings.default("eval_wait_secs"),
                 hang_secs: float = settings.default("hang_secs"), on_hang: str = settings.default("on_hang"),
                 straggler_ratio: float = settings.default("straggler_ratio"),
                 clock: Optional[Clock] = None, investigate_hang: Investigate = investigate,
                 publish: Callable[[dict], None] = lambda cluster: None,
                 requests: Optional[scale_requests.Channel] = None):
        self._clock = clock or SystemClock()
        self.spec = spec  # changes when a task moves to another node
        self._backend = backend
        self._console = console
        self._command = command
        self._env = env
        self._train_steps = train_steps
        self._rules = RestartRules(policy, max_restarts)
        self._grace_secs = grace_secs
        self._worker_exit_secs = worker_exit_secs
        self._eval_wait_secs = eval_wait_secs
        self._stop = stop
        self._on_hang = on_hang
        self._investigate = investigate_hang
        self._make_output = make_output
        # Where running tasks learn moved addresses (<model_dir>/.cluster.json, see task.membership).
        self._publish = publish
        self._requests = requests or scale_requests.NoChannel()
        # Written by output threads, read by the loop only: the one thing shared between threads.
        self._events: queue.Queue[events.Status | events.Ended] = queue.Queue()
        self.states = {t: TaskState(t, make_output(t, self._heard)) for t in spec.tasks()}
        self._gate_open = False
        self._moved_ahead: dict[TaskId, Move] = {}  # moved with another task of its lost node, not restarted yet
        self._evaluator_failure: Optional[Failure] = None
        self._chief_done_at: Optional[float] = None
        self._last_progress: Optional[float] = None
        self._progress = RunProgress(train_steps, straggler_ratio)
        self._watchdog = Watchdog(hang_secs)
        # For run.json (see run.py): the evaluator's early stop, each hang and what was done, stragglers.
        self.early_stop: Optional[dict] = None
        self.launched = launched if launched is not None else self._clock.time()  # "seconds from launch"
        self.hangs: list[dict] = []
        self.stragglers = self._progress.stragglers
        self.step_series = self._progress.step_series
        self.membership: list[dict] = []  # for run.json: workers joining and leaving (`launcher scale`)

    # -- output threads: parse and queue, nothing else --

    def _heard(self, task: TaskId, fields: dict) -> None:
        event = events.from_status(task, fields, self._clock.monotonic(), self._clock.time())
        if event is not None:
            self._events.put(event)

    # -- the loop --

    def run(self) -> Outcome:
        try:
            for task in sorted(self.states, key=lambda t: t.job != PS):  # servers first
                if self._stop.requested:
                    break  # a signal while the run was being prepared: start nothing more
                self._start(self.states[task])
            while True:
                outcome = self._step()
                if outcome is not None:
                    return outcome
                event = self._clock.wait(self._events, POLL_SECS)
                if event is not None:
                    self._apply(event)
        finally:
            self._stop_all()
            self._console.close()

    def _step(self) -> Optional[Outcome]:
        if self._stop.requested:
            self._console.line(f"[launcher] received {self._stop.name}: stopping every task "
                               "(the chief saves a checkpoint)")
            return Outcome(self._stop.exit_code, f"stopped by {self._stop.name}")
        outcome = self._reap()
        if outcome is None:
            self._pass_gate()
            outcome = self._end_of_run() or self._observe()
        return outcome

    def _reap(self) -> Optional[Outcome]:
        """Act on every process that ended; the first failure for good ends the run."""
        ended = [(s, code) for s in self.states.values() if s.running and (code := s.handle.poll()) is not None]
        self._drain()  # a process's last status lines come before its exit
        for state, code in ended:
            failure = self._ended(state, code)
            if failure is not None:
                for other in self.states.values():
                    other.output.mute()  # what the others say while stopped is consequence, not cause
                return Outcome.failed(failure)
        return None

    def _observe(self) -> Optional[Outcome]:
        """Twice a second: the progress line, where OOM kills are counted, and the watchdog."""
        now = self._clock.monotonic()
        if self._last_progress is not None and now - self._last_progress < PROGRESS_EVERY_SECS:
            return None
        self._last_progress = now
        self._take_request()
        self._hurry_leavers(now)
        self._show_progress()
        root_cause.watch_memory(self.states.values())
        alarm = self._watchdog.check(self.states.values(), now)
        return self._on_alarm(alarm) if alarm is not None else None

    def _drain(self) -> None:
        while True:
            try:
                self._apply(self._events.get_nowait())
            except queue.Empty:
                return

    def _apply(self, event: events.Status | events.Ended) -> None:
        if isinstance(event, events.Ended):
            return  # it woke the loop, whose next _reap finds the process's end
        state = self.states.get(event.task)
        if state is None or not state.attempts:
            return
        state.apply(event)
        if self._progress.apply(event):
            self._watchdog.step(self._progress.global_step, event.mono)  # a rollback too: the run moves on
        if event.kind == status.EARLY_STOP:
            decision = early_stop.decide(self.states.values(), self.early_stop, event.step, event.reason)
            if decision is not None:
                self.early_stop = decision.record
                for task in decision.finish:
                    self.states[task].handle.signal(task_env.FINISH_SIGNAL)

    # -- carrying out decisions --

    def _pass_gate(self) -> None:
        decision = gate.decide(self.states.values(), self._gate_open)
        if decision.is_open and not self._gate_open:
            self._gate_open = True
            self._watchdog.arm(self._clock.monotonic())
        for task in decision.release:
            self.states[task].attempts[-1].go_at = self._clock.monotonic()
            self.states[task].handle.signal(task_env.GO_SIGNAL)

    def _start(self, state: TaskState, joined: bool = False) -> None:
        self.stragglers.restart(state.task)
        move = self._moved_ahead.pop(state.task, None)
        if move is None and state.attempts and not joined:
            move = self._backend.relocate(state.task)
            if move is not None:
                self._moved(state, move)
        argv = self._command(state.task)
        state.attempts.append(Attempt(started=self._clock.time(), began_at=self._clock.monotonic(), argv=argv,
                                      host=self.spec.address(state.task).host,
                                      moved=None if move is None else
                                      {"from": move.old_host, "to": move.address.host, "why": move.why},
                                      joined=joined))
        state.output.begin(len(state.attempts), argv)
        state.started(self._backend.start(state.task, argv, self._env(state.task, self.spec), state.output.write,
                                          on_end=lambda: self._events.put(events.Ended(state.task))))

    def _restart(self, state: TaskState) -> Optional[Failure]:
        try:
            self._start(state)
        except PlacementError as e:
            state.phase = Phase.FAILED
            return Failure(state.task, state.attempts[-1].exit_code, state.output.tail(), reason=str(e))
        return None

    def _moved(self, state: TaskState, move: Move) -> None:
        """`state`'s task runs at a new address from now on (see `node_moves`)."""
        plan = node_moves.plan(state.task, move, self.states.values(), self.spec, self._backend.relocate)
        self._moved_ahead.update(plan.ahead(state.task))
        self.spec = self.spec.replace_addresses({task: m.address for task, m in plan.moves.items()})
        for task, m in plan.moves.items():
            self._console.line(f"[launcher] {task} moves from {m.old_host} to {m.address} ({m.why})")
        for task, m in plan.ahead(state.task).items():
            self._kill_to_restart(task, f"its node {m.old_host} was lost")
        # Before the moved task starts: the others read it when they next create a session (no restart).
        self._publish_cluster()

    def _publish_cluster(self) -> None:
        """The live training cluster, for running tasks: the members' addresses (see task.membership)."""
        cluster = self.spec.cluster_dict(training_only=True)
        if WORKER in cluster:
            cluster[WORKER] = cluster[WORKER][:len(scale.members(self.states.values()))]
            if not cluster[WORKER]:
                del cluster[WORKER]
        try:
            self._publish(cluster)
        except OSError as e:  # the moved task still gets its TF_CONFIG; the others keep the old address
            self._console.line(f"[launcher] could not publish the new cluster: {e}")

    # -- membership: `launcher scale` --

    def _take_request(self) -> None:
        request, refused = self._requests.poll()
        if refused:
            self._console.line(f"[launcher] scale request refused: {refused}")
        if request is None:
            return
        decision = scale.decide(self.states.values(), request.workers)
        if decision.add:
            try:
                self._add_workers(decision.add)
            except PlacementError as e:
                decision = scale.ScaleDecision(refused=f"cannot place {', '.join(map(str, decision.add))}: {e}")
        for task in decision.remove:
            self._ask_to_leave(self.states[task])
        before = len(scale.members(self.states.values())) + len(decision.remove) - len(decision.add)
        if decision.refused:
            self._console.line(f"[launcher] scale to {request.workers} workers refused: {decision.refused}")
        else:
            self._console.line(f"[launcher] scale to {request.workers} workers: {decision.message}")
            if decision.add or decision.remove:
                self._publish_cluster()
        self._requests.answer(request, decision.refused is None,
                              decision.message if decision.refused else
                              f"workers {before} -> {request.workers}: {decision.message}")

    def _add_workers(self, tasks: tuple[TaskId, ...]) -> None:
        """New workers get new addresses (the backend picks them) and start gated like any task: once the
        gate is open, each gets GO as soon as it is READY."""
        new = [t for t in tasks if t.index >= self.spec.count(WORKER)]
        if new:
            template = self.spec.address(TaskId(WORKER, 0) if self.spec.count(WORKER) else CHIEF_0)
            self.spec = resolve_added(self._backend, self.spec.with_workers(
                len(new) + self.spec.count(WORKER), template.host), new)
        for task in tasks:
            state = self.states.get(task)
            if state is None:
                state = self.states[task] = TaskState(task, self._make_output(task, self._heard))
            state.member, state.restart_for = True, None
            state.phase = Phase.PENDING
            self._membership_change(task, "join")
            self._start(state, joined=True)

    def _ask_to_leave(self, state: TaskState) -> None:
        """A worker past the gate finishes its step and exits 0 (the finish signal); one not yet past it has
        not trained and is stopped (the finish signal's default action would end it just as well, with a
        signal's exit status)."""
        state.member, state.asked_to_leave_at = False, self._clock.monotonic()
        self._membership_change(state.task, "leave")
        self.stragglers.forget(state.task)
        if state.running:
            state.handle.signal(task_env.FINISH_SIGNAL if state.attempts[-1].go_at is not None else signal.SIGTERM)

    def _hurry_leavers(self, now: float) -> None:
        """A worker asked to leave is not watched for hangs; one still running `hang_secs` later is killed
        (it is not needed, so its end is neither a failure nor a restart)."""
        for state in self.states.values():
            if state.running and not state.member and state.asked_to_leave_at is not None \
                    and now - state.asked_to_leave_at >= self._watchdog.hang_secs \
                    and state.attempts[-1].killed_for is None:
                self._console.line(f"[launcher] {state.task} was asked to leave {self._watchdog.hang_secs:.0f} s ago "
                                   "and is still running; killing it")
                state.attempts[-1].killed_for = "did not leave when asked"
                state.handle.signal(signal.SIGKILL)

    def _membership_change(self, task: TaskId, change: str) -> None:
        self.membership.append({"time": self._clock.time(), "task": str(task), "change": change,
                                "workers": len(scale.members(self.states.values()))})

    def _kill_to_restart(self, task: TaskId, why: str) -> None:
        self.states[task].restart_for = why
        self.states[task].handle.signal(signal.SIGKILL)

    def _ended(self, state: TaskState, code: int) -> Optional[Failure]:
        """Book a process that ended and carry out the restart policy's decision. A Failure ends the run."""
        state.ended(code, self._clock.time())
        attempt = state.attempts[-1]
        if code != exit_codes.OK and not attempt.killed_for and state.restart_for is None:
            attempt.cause = root_cause.find(state.output.attempt_lines(), code, attempt.local_pid, attempt.memory,
                                            str(self.spec.address(state.task)), reported=attempt.failure)
        decision = self._rules.decide(Ended(state.task, code, state.restarts,
                                            training_over=self._chief_done_at is not None,
                                            killed_for=attempt.killed_for, killed_at_end=attempt.killed_at_end,
                                            restart_for=state.restart_for, leaving=not state.member))
        restart_for, state.restart_for = state.restart_for, None
        if not state.member:  # asked to leave: done, or not needed (see the restart policy)
            self._membership_change(state.task, "left")
            self._console.line(f"[launcher] {state.task} left ({exit_codes.describe(code)})")
        if decision.verdict is Verdict.DONE:
            state.phase = Phase.DONE
            if state.task == CHIEF_0 and self._chief_done_at is None:
                self._chief_done_at = self._clock.monotonic()
        elif decision.verdict is Verdict.NOT_NEEDED:
            state.phase = Phase.STOPPED
        elif decision.verdict is Verdict.RESTART:
            self._say_restart(state, code, decision, restart_for)
            if state.task.job == CHIEF and decision.why is not Why.PEER_MOVED:
                self._restart_released_ps()
            return self._restart(state)
        else:
            return self._failed(state, code, decision)
        return None

    def _say_restart(self, state: TaskState, code: int, decision: Decision, restart_for: Optional[str]) -> None:
        if decision.why is Why.PEER_MOVED:
            self._console.line(f"[launcher] {state.task} restarting: {restart_for}")
            return
        cause = state.attempts[-1].cause
        why = "killed: it hung" if decision.why is Why.HUNG else exit_codes.describe(code) + (
            f": {cause}" if cause else "")
        self._console.line(f"[launcher] {state.task} {why}; "
                           f"restarting ({state.restarts + 1}/{self._rules.max_restarts})")

    def _failed(self, state: TaskState, code: int, decision: Decision) -> Optional[Failure]:
        state.phase = Phase.FAILED
        attempt = state.attempts[-1]
        failure = Failure(state.task, code, state.output.tail(),
                          cause=f"killed after it hung ({attempt.killed_for})" if attempt.killed_for else attempt.cause,
                          log=state.output.path)
        if decision.verdict is Verdict.EVALUATOR_FAILED:
            self._evaluator_failure = failure
            self._console.line(f"[launcher] {state.task} {exit_codes.describe(code)}; training goes on")
            return None  # the gate, next, may open: the others may have been waiting only for it
        if decision.out_of_restarts:
            self._console.line(f"[launcher] {state.task} {exit_codes.describe(code)}; "
                               f"no restarts left ({self._rules.max_restarts} used)")
        return failure

    def _restart_released_ps(self) -> None:
        """A chief that released its ps (they exited 0) and then died before its own exit 0: the chief that
        replaces it needs ps servers again; they get the variables back from its restore."""
        for other in self.states.values():
            if other.task.job == PS and other.phase is Phase.DONE:
                self._console.line(f"[launcher] {other.task} had ended after the chief's release; starting it "
                                   "again for the restarted chief")
                self._start(other)

    def _end_of_run(self) -> Optional[Outcome]:
        now = self._clock.monotonic()
        decision = end_of_run.decide(self.states.values(), now, self._chief_done_at,
                                     worker_exit_secs=self._worker_exit_secs, eval_wait_secs=self._eval_wait_secs)
        for task in decision.dismiss:
            state = self.states[task]
            state.attempts[-1].dismissed_at = now
            when = "while it was re-creating its session" if state.attempts[-1].sessions else "before it joined"
            self._console.line(f"[launcher] {task} is not needed: training ended {when}; stopping it")
            state.handle.signal(signal.SIGTERM)
        for task in end_of_run.unwilling(self.states.values(), now):
            self.states[task].attempts[-1].dismiss_killed = True
            self.states[task].handle.signal(signal.SIGKILL)
        if decision.give_up:
            silent = tuple(Silence(t, end_of_run.silent_secs(self.states[t], now), False) for t in decision.give_up)
            self._on_alarm(Alarm(silent, silent, None, self._progress.global_step, end_of_run=True))
        if not decision.over:
            return None
        given_up = [s.task.name for s in self.states.values() if s.task.job == WORKER and s.running]
        if given_up and self._evaluator_failure is None:
            self._console.line(f"[launcher] gave up waiting for {', '.join(given_up)} after the chief's "
                               f"final save ({self._worker_exit_secs:.0f} s); stopping")
        self._show_progress(force=True)
        return Outcome.trained(self._train_steps, self._evaluator_failure, self.early_stop, self._progress.global_step)

    def _on_alarm(self, alarm: Alarm) -> Optional[Outcome]:
        """Explain a hang (stacks, ports, process states: a verdict), then carry out the hang policy."""
        detected = self._clock.time()
        findings = self._investigate(list(self.states.values()), alarm, lambda t: str(self.spec.address(t)),
                                     self._watchdog.hang_secs)
        found = findings.diagnosis
        decision = hang.decide(self._on_hang, alarm, found, self.states.values(), self._clock.monotonic(),
                               self._watchdog.hang_secs)
        self.hangs.append(findings.record(alarm, decision.action, detected, self._clock.time()))
        self._console.line(f"[launcher] {found.verdict}")
        culprit_logs = [findings.stacks[t.name] for t in found.culprits if t.name in findings.stacks]
        if culprit_logs:
            self._console.line(f"[launcher] stacks: {', '.join(culprit_logs)}")
        self._watchdog.arm(self._clock.monotonic())  # whatever is done, give it hang_secs before the next verdict
        if decision.action == hang.ABORT:
            self._console.line("[launcher] --on_hang abort: stopping every task (the chief saves a checkpoint "
                               "if it can)")
            return Outcome(exit_codes.HUNG, found.verdict)
        if decision.action == hang.REPORT:
            self._console.line("[launcher] --on_hang report: nothing done; training may stay stuck")
        elif decision.action == hang.WAIT:
            self._console.line(f"[launcher] not acting yet: the run is recovering ({decision.recovering} was "
                               f"restarted lately); acting if it is still stuck in {self._watchdog.hang_secs:.0f} s")
        for task in decision.kill:
            attempt = self.states[task].attempts[-1]
            attempt.killed_for, attempt.killed_at_end = found.verdict, alarm.end_of_run
            self.states[task].handle.signal(signal.SIGKILL)
        return None

    # -- the rest: observation and the end --

    def _show_progress(self, force: bool = False) -> None:
        line, named = self._progress.line(self.states.values(), self._clock.monotonic(), self._clock.time())
        for straggler in named:
            self._console.line(f"[launcher] straggler: {straggler.task} steps {straggler.ratio:.1f}x slower "
                               f"than the median of its peers (reported, not stopped)")
        self._console.progress(line, force=force)

    def _stop_all(self) -> None:
        stop_waves.stop_all(self.states.values(), self._clock, self._grace_secs, lambda: self._stop.hurried,
                            self._console.line)
        for state in self.states.values():
            state.output.close()
