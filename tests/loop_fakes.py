"""A fake clock, a fake backend and scripted fake task processes, for driving the supervisor's loop in-process
(tests/test_supervisor_loop.py): no process, no thread, no real time; a whole run takes milliseconds.

Time only moves when the loop waits or sleeps (`FakeClock.wait` / `sleep`): it jumps to the next scheduled
action of a fake task, which may print a status line (through the real `TaskOutput`, so the real parsing and
queueing is exercised) or end its process.

A task's behaviour is a dict per attempt (the last one repeats), times in seconds after GO:
  ready: secs after start to report READY (default 0.1); error: "text" prints "error: text", exits 2 first
  train: secs of training, one PROGRESS a second, then DONE and exit `exit` (default 0)
  serve: True        a ps: waits until stopped
  die: secs, code    the process ends with `code` (e.g. -9) at `die`
  freeze: secs       from then on it says nothing and ignores everything but SIGKILL (SIGTERM needs SIGCONT);
                     the fake investigation finds it stopped (as /proc would)
  pause: [from, to]  says nothing and makes no step in that window (waiting for a peer), then goes on
  ignore_term: True  SIGTERM does nothing
  wait_workers: True the chief, after DONE, exits 0 only once no worker runs
  failure: {...}     report this FAILURE status just before a non-zero exit
  early_stop: secs   the evaluator reports an early stop then (and keeps running until FINISH or SIGTERM)
"""

from __future__ import annotations

import heapq
import io
import itertools
import json
import queue
import signal
from typing import Callable, Optional

from launcher.cluster import typed_json
from launcher.cluster import spec as spec_lib, status, task_env
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import TaskId
from launcher.cluster.stop_signals import StopRequest
from launcher.launch.backends import Move
from launcher.launch.console import Console
from launcher.launch.diagnosis import Diagnosis, Probe
from launcher.launch.hang_investigation import Findings
from launcher.launch.supervisor import Supervisor
from launcher.launch.task_output import TaskOutput

LOCAL2 = {"chief": ["localhost:1"], "worker": ["localhost:2"], "ps": ["localhost:3"]}
LIMIT_SECS = 10_000.0  # a fake run that gets here is stuck: fail instead of looping forever


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self._due: list = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._due, (self.now + delay, next(self._order), action))

    def sleep(self, secs: float) -> None:
        self._advance(self.now + secs)

    def _advance(self, target: float, until: Callable[[], bool] = lambda: False) -> None:
        """Run what falls due up to `target`, and stop there; or right after an action once `until()`."""
        while not until() and self._due and self._due[0][0] <= target:
            when, _, action = heapq.heappop(self._due)
            self.now = max(self.now, when)
            action()
        if not until():
            self.now = target
        if self.now > LIMIT_SECS:
            raise RuntimeError(f"the fake run did not end within {LIMIT_SECS} fake seconds")

    def wait(self, events: queue.Queue, secs: float):
        """As `queue.get(timeout=secs)`: back as soon as something is put (a status line, a process's end)."""
        self._advance(self.now + secs, until=lambda: not events.empty())
        try:
            return events.get_nowait()
        except queue.Empty:
            return None


class FakeProcess:
    """One attempt of one task, played from its behaviour dict on the fake clock."""

    pid = None

    def __init__(self, cluster: FakeCluster, task: TaskId, attempt: int, behaviour: dict,
                 on_line: Callable[[str], None], on_end: Callable[[], None] = lambda: None):
        self.cluster, self.task, self.attempt, self.b = cluster, task, attempt, behaviour
        self._on_line = on_line
        self._on_end = on_end
        self.code: Optional[int] = None
        self.signals: list[int] = []
        self.frozen = self.stopped_term = False
        self.went = self.lost = False
        self.went_at: Optional[float] = None
        clock = cluster.clock
        if "error" in behaviour:
            clock.at(0.1, lambda: (self._say(f"error: {behaviour['error']}"), self._exit(2)))
        else:
            clock.at(behaviour.get("ready", 0.1), lambda: self._status(status.READY))

    # -- what the launcher sees --

    def poll(self) -> Optional[int]:
        return self.code

    def signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.cluster.signals.append((self.cluster.clock.now, str(self.task), self.attempt, signum))
        if self.code is not None:
            return
        if signum == signal.SIGKILL:
            self._exit(-signal.SIGKILL)
        elif signum == signal.SIGCONT and self.frozen and self.stopped_term:
            self._exit(128 + signal.SIGTERM)
        elif self.frozen:
            self.stopped_term = self.stopped_term or signum == signal.SIGTERM
        elif signum == signal.SIGTERM and not self.b.get("ignore_term"):
            self._exit(128 + signal.SIGTERM)
        elif signum == task_env.GO_SIGNAL:
            assert not self.went, f"{self.task} got GO twice"
            self.went, self.went_at = True, self.cluster.clock.now
            self._go()
        elif signum == task_env.FINISH_SIGNAL:
            self._status(status.DONE, step=self.cluster.step, local_steps=1)
            self._exit(0)

    # -- its script --

    def _go(self) -> None:
        clock, b = self.cluster.clock, self.b
        if "freeze" in b:
            clock.at(b["freeze"], self._freeze)
        if "die" in b:
            clock.at(b["die"], lambda: self._end(b.get("code", -signal.SIGKILL)))
        if "early_stop" in b:
            clock.at(b["early_stop"], lambda: self._status(status.EARLY_STOP, step=self.cluster.step,
                                                          reason="no better score in 5 evaluations"))
        if "lose_session" in b:  # its session fails and is never made again (it re-creates it for ever)
            clock.at(b["lose_session"], self._lose_session)
        if "train" in b:
            self._status(status.NO_SESSION)
            self._status(status.SESSION, step=self.cluster.step)
            for second in range(1, int(b["train"]) + 1):
                clock.at(second, self._progress)
            clock.at(b["train"], self._done)

    def _lose_session(self) -> None:
        self._status(status.NO_SESSION)
        self.lost = True

    def _progress(self) -> None:
        if self.lost:
            return
        since_go = self.cluster.clock.now - self.went_at
        if "pause" in self.b and self.b["pause"][0] <= since_go < self.b["pause"][1]:
            return
        self.cluster.step += 10
        self._status(status.PROGRESS, step=self.cluster.step, local_steps=self.cluster.step)

    def _done(self) -> None:
        if self.lost:
            return
        self._status(status.DONE, step=self.cluster.step, local_steps=self.cluster.step)
        if self.b.get("wait_workers"):
            self._exit_after_workers()
        else:
            self._end(self.b.get("exit", 0))

    def _exit_after_workers(self) -> None:
        if self.code is not None or self.frozen:
            return
        if any(p.code is None and p.task.job == "worker" for p in self.cluster.current.values()):
            self.cluster.clock.at(0.5, self._exit_after_workers)
        else:
            self._exit(0)

    def _freeze(self) -> None:
        self.frozen = True

    def _end(self, code: int) -> None:
        if self.code is None and not self.frozen:
            if code not in (0, -signal.SIGKILL) and "failure" in self.b:
                self._status(status.FAILURE, failure=self.b["failure"])
            self._exit(code)

    def _exit(self, code: int) -> None:
        if self.code is None:
            self.code = code
            self._on_end()  # as a local process's end wakes the loop

    def _say(self, line: str) -> None:
        if self.code is None:
            self._on_line(line)

    def _status(self, event: str, **fields) -> None:
        if self.code is None and not self.frozen:
            self._on_line(status.PREFIX + json.dumps({"event": event, **fields}))


class FakeCluster:
    """The fake backend: starts FakeProcesses as the plan says, and moves tasks when told to."""

    def __init__(self, clock: FakeClock, plan: dict[str, list[dict]]):
        self.clock = clock
        self.plan = plan
        self.step = 0
        self.started: list[tuple[float, str, int]] = []
        self.signals: list[tuple[float, str, int, int]] = []
        self.current: dict[TaskId, FakeProcess] = {}
        self.attempts: dict[TaskId, int] = {}
        self.moves: dict[TaskId, object] = {}  # task -> Move (or PlacementError) for its next relocate
        self.closed = False
        self.added: list[TaskId] = []

    def resolve(self, spec):
        return spec

    def resolve_added(self, spec, tasks):
        from launcher.cluster.spec import Address

        base = 101 + len(self.added)
        self.added.extend(tasks)
        return spec.replace_addresses({t: Address(spec.address(t).host, base + i) for i, t in enumerate(tasks)})

    def relocate(self, task: TaskId) -> Optional[Move]:
        move = self.moves.pop(task, None)
        if isinstance(move, Exception):
            raise move
        return move

    def start(self, task: TaskId, argv, env, on_line, on_end=lambda: None) -> FakeProcess:
        n = self.attempts[task] = self.attempts.get(task, 0) + 1
        plan = self.plan.get(str(task), [{"train": 3}] if task.job in ("chief", "worker") else [{"serve": True}])
        self.started.append((self.clock.now, str(task), n))
        self.current[task] = FakeProcess(self, task, n, plan[min(n, len(plan)) - 1], on_line, on_end)
        return self.current[task]

    def close(self) -> None:
        self.closed = True

    def got(self, task: str, signum: int) -> list[float]:
        """When `task` got `signum`."""
        return [t for t, name, _, s in self.signals if name == task and s == signum]


def fake_investigation(cluster: FakeCluster):
    """An investigation without processes: the culprits are the frozen processes (stopped, as /proc would
    say) or the silent ones; `calls` keeps the alarms seen."""
    calls = []

    def investigate(states, alarm, address_of, hang_secs) -> Findings:
        calls.append(alarm)
        probes = tuple(Probe(s.task, s.phase.value, "T" if cluster.current[s.task].frozen else "S", None,
                             s.attempts[-1].step, None) for s in states if s.running)
        culprits = tuple(p.task for p in probes if p.stopped) or tuple(s.task for s in alarm.silent)
        head = "end of run" if alarm.end_of_run else "hang"
        return Findings(Diagnosis(f"{head}: {', '.join(map(str, culprits))}", culprits, probes), {})

    investigate.calls = calls
    return investigate


class FakeRequests:
    """`launcher scale` without files: `ask(secs, workers)` puts a request at that fake time; `answers` keeps
    the launcher's answers (ok, message) in order."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.pending: list = []
        self.answers: list[tuple[bool, str]] = []

    def ask(self, secs: float, workers) -> None:
        from launcher.launch.scale_requests import Request

        self.clock.at(secs, lambda: self.pending.append(Request(f"r{len(self.answers)}", workers)))

    def poll(self):
        return (self.pending.pop(0), None) if self.pending else (None, None)

    def answer(self, request, ok: bool, message: str) -> None:
        self.answers.append((ok, message))


class LoopRun:
    """One supervisor over the fake cluster; `run()` returns its Outcome."""

    def __init__(self, tmp_path, plan: dict, cluster: Optional[dict] = None, *, policy=RestartPolicy.EXIT_CODE,
                 max_restarts: int = 2, grace_secs: float = 5.0, worker_exit_secs: float = 5.0,
                 eval_wait_secs: float = 20.0, hang_secs: float = 10.0, on_hang: str = "restart"):
        self.clock = FakeClock()
        self.backend = FakeCluster(self.clock, plan)
        self.stop = StopRequest(armed=True, exit_when_hurried=False)
        self.out = io.StringIO()
        console = Console(self.out)
        self.investigate = fake_investigation(self.backend)
        self.requests = FakeRequests(self.clock)
        self.published: list[tuple[float, dict]] = []
        self.supervisor = Supervisor(
            spec_lib.from_json(cluster or LOCAL2, "spec.json"), self.backend, console,
            command=lambda task: ["task", str(task)], env=lambda task, spec: {},
            make_output=lambda task, on_status: TaskOutput(task, str(tmp_path), console, on_status),
            train_steps=100, policy=policy, max_restarts=max_restarts, grace_secs=grace_secs,
            worker_exit_secs=worker_exit_secs, stop=self.stop, eval_wait_secs=eval_wait_secs, hang_secs=hang_secs,
            on_hang=on_hang, clock=self.clock, investigate_hang=self.investigate,
            publish=lambda cluster: self.published.append((self.clock.now, cluster)), requests=self.requests)

    def signal_at(self, secs: float, signum: int) -> None:
        self.clock.at(secs, lambda: self.stop.receive(signum))

    def run(self):
        self.outcome = self.supervisor.run()
        self.ended_at = self.clock.now
        return self.outcome

    def record(self, task: str) -> dict:
        return next(typed_json.encode(s.record(0)) for s in self.supervisor.states.values() if str(s.task) == task)

    @property
    def console(self) -> str:
        return self.out.getvalue()
