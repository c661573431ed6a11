"""The supervisor with real processes of a stand-in task program (tests/bin/task_stub.py), no TensorFlow: what
only real processes show (the gate's signals reach a real handler, real kills and exit statuses, a task that
ignores SIGTERM, the output pipes). Every decision is also tested in-process, in milliseconds, in
tests/test_supervisor_loop.py. Stop signals are handed to the launcher's StopRequest directly: the pytest
process itself never gets a signal."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time

import pytest

from conftest import TESTS
from launcher.cluster import exit_codes, spec as spec_lib, task_env, tf_config, typed_json
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.stop_signals import StopRequest
from launcher.launch.backends.local import LocalBackend, LocalProcess
from launcher.launch.console import Console
from launcher.launch.supervisor import Supervisor
from launcher.launch.task_output import TaskOutput
from launcher.launch.task_state import Phase

STUB = str(TESTS / "bin" / "task_stub.py")
LOCAL2 = {"chief": ["localhost:1"], "worker": ["localhost:2"], "ps": ["localhost:3"]}


@pytest.fixture
def stop():
    return StopRequest(armed=True, exit_when_hurried=False)  # not installed: tests call `receive`


class Run:
    def __init__(self, tmp_path, stop, cluster, plan, *, policy=RestartPolicy.EXIT_CODE, max_restarts=2,
                 grace_secs=5.0, worker_exit_secs=5.0, eval_wait_secs=5.0):
        self.journal = tmp_path / "journal"
        self.stop = stop
        self.console = io.StringIO()
        spec = spec_lib.from_json(cluster, "spec.json")
        env = {**os.environ, "STUB_JOURNAL": str(self.journal), "STUB_PLAN": json.dumps(plan),
               task_env.GATED: "1"}
        console = Console(self.console)
        self.supervisor = Supervisor(
            spec, LocalBackend(), console,
            command=lambda task: [sys.executable, STUB],
            env=lambda task, current: {**env, tf_config.ENV_VAR: tf_config.build(current.cluster_dict(), task)},
            make_output=lambda task, on_status: TaskOutput(task, str(tmp_path), console, on_status),
            train_steps=10, policy=policy, max_restarts=max_restarts, grace_secs=grace_secs,
            worker_exit_secs=worker_exit_secs, stop=stop, eval_wait_secs=eval_wait_secs)

    def run(self):
        self.outcome = self.supervisor.run()
        return self.outcome

    def events(self, task: str) -> list[tuple[int, str, float]]:
        lines = [line.split() for line in self.journal.read_text().splitlines()]
        return [(int(a), " ".join(rest[:-1]), float(rest[-1])) for name, a, *rest in lines if name == task]

    def first(self, task: str, event: str) -> float:
        return next(t for _, e, t in self.events(task) if e == event)

    def record(self, task: str) -> dict:
        return next(typed_json.encode(s.record(0)) for s in self.supervisor.states.values() if s.task.name == task)


def _signal_once(run: Run, task: str, event: str, *signums: int) -> threading.Thread:
    """Once `task` has noted `event` in the journal (its signal handlers are in place), the launcher receives
    `signums`, a second apart, as its handler would note them: no real signal is sent to this process."""
    def deliver():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (run.journal.exists() and any(
                e == event for _, e, _ in run.events(task))):
            time.sleep(0.05)
        for i, signum in enumerate(signums):
            time.sleep(1.0 if i else 0.0)
            run.stop.receive(signum)

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    return thread


def test_a_run_succeeds_when_chief_and_workers_are_done_and_the_ps_is_stopped_after_them(tmp_path, stop):
    run = Run(tmp_path, stop, LOCAL2, {"chief:0": [{"exit": 0, "secs": 0.3}], "worker:0": [{"exit": 0, "secs": 0.6}],
                                      "ps:0": [{"serve": True}]})
    assert run.run().exit_code == exit_codes.OK
    assert run.first("ps:0", "sigterm") > max(run.first("chief:0", "exit 0"), run.first("worker:0", "exit 0"))
    assert {s.task.name: s.phase for s in run.supervisor.states.values()} == {
        "chief:0": Phase.DONE, "worker:0": Phase.DONE, "ps:0": Phase.STOPPED}


def test_no_task_passes_the_gate_before_every_task_is_ready(tmp_path, stop):
    # The chief trains a while: one that ends at once has its worker dismissed (it had not joined) as soon
    # as the loop learns of the end, which can be before the worker has noted its GO.
    run = Run(tmp_path, stop, LOCAL2, {"ps:0": [{"serve": True}], "chief:0": [{"exit": 0, "secs": 1}]})
    assert run.run().exit_code == exit_codes.OK
    last_start = max(run.first(t, "start") for t in ("chief:0", "worker:0", "ps:0"))
    assert all(run.first(t, "go") > last_start for t in ("chief:0", "worker:0", "ps:0"))


def test_a_bad_input_of_one_task_ends_the_run_with_its_own_line_before_any_task_goes_on(tmp_path, stop):
    run = Run(tmp_path, stop, LOCAL2, {"worker:0": [{"error": "--worker_flags[0]: '--x=1': Unknown flag"}],
                                      "ps:0": [{"serve": True}]})
    outcome = run.run()
    assert outcome.exit_code == exit_codes.BAD_INPUT
    assert outcome.summary == "--worker_flags[0]: '--x=1': Unknown flag (worker:0 exited 2)"
    assert not [e for _, e, _ in run.events("chief:0") if e == "go"]
    assert run.record("worker:0")["restarts"] == 0


@pytest.mark.parametrize("policy, plan, restarted", [
    (RestartPolicy.EXIT_CODE, [{"signal": "SIGKILL"}, {"exit": 0}], True),
    (RestartPolicy.EXIT_CODE, [{"exit": 1}, {"exit": 0}], False),
    (RestartPolicy.ON_FAILURE, [{"exit": 1}, {"exit": 0}], True),
    (RestartPolicy.NEVER, [{"signal": "SIGKILL"}, {"exit": 0}], False),
], ids=["exit_code-signal", "exit_code-exception", "on_failure-exception", "never-signal"])
def test_restart_policies(tmp_path, stop, policy, plan, restarted):
    run = Run(tmp_path, stop, {"chief": ["localhost:1"], "worker": ["localhost:2"]},
              {"chief:0": [{"exit": 0, "secs": 1.0}], "worker:0": plan}, policy=policy)
    outcome = run.run()
    assert run.record("worker:0")["restarts"] == (1 if restarted else 0)
    if restarted:
        assert outcome.exit_code == exit_codes.OK
    else:
        assert outcome.exit_code == exit_codes.TRAINING_FAILED and outcome.failure.task.name == "worker:0"
        assert outcome.summary.startswith("worker:0 ")


def test_restarts_run_out(tmp_path, stop):
    run = Run(tmp_path, stop, {"chief": ["localhost:1"]}, {"chief:0": [{"signal": "SIGKILL"}]}, max_restarts=2)
    outcome = run.run()
    assert outcome.exit_code == exit_codes.TRAINING_FAILED
    assert run.record("chief:0")["exit_codes"] == [-9, -9, -9]
    assert "no restarts left (2 used)" in run.console.getvalue()


def test_a_failed_evaluator_lets_training_finish_and_fails_the_run(tmp_path, stop):
    run = Run(tmp_path, stop, {"chief": ["localhost:1"], "evaluator": ["localhost:2"]},
              {"chief:0": [{"exit": 0, "secs": 0.5}], "evaluator:0": [{"exit": 1}]})
    outcome = run.run()
    assert outcome.exit_code == exit_codes.TRAINING_FAILED
    assert "training reached step 10, but the evaluator failed" in outcome.summary
    assert run.record("chief:0")["exit_code"] == 0


def test_a_task_that_ignores_sigterm_is_killed_after_the_grace(tmp_path, stop):
    run = Run(tmp_path, stop, {"chief": ["localhost:1"]}, {"chief:0": [{"ignore_term": True}]}, grace_secs=1.0)
    _signal_once(run, "chief:0", "go", signal.SIGTERM)
    started = time.monotonic()
    outcome = run.run()
    assert outcome.exit_code == exit_codes.PREEMPTED
    assert run.record("chief:0")["exit_code"] == -signal.SIGKILL
    assert time.monotonic() - started >= 1.0  # the grace was given


def test_a_second_signal_kills_at_once(tmp_path, stop):
    run = Run(tmp_path, stop, {"chief": ["localhost:1"]}, {"chief:0": [{"ignore_term": True}]}, grace_secs=600)
    _signal_once(run, "chief:0", "go", signal.SIGINT, signal.SIGINT)
    outcome = run.run()  # with a 600 s grace, only the second signal can end this
    assert outcome.exit_code == 128 + signal.SIGINT
    assert run.record("chief:0")["exit_code"] == -signal.SIGKILL


def test_a_signal_before_the_run_starts_starts_nothing(tmp_path, stop):
    stop.receive(signal.SIGTERM)
    run = Run(tmp_path, stop, LOCAL2, {})
    assert run.run().exit_code == exit_codes.PREEMPTED
    assert not run.journal.exists()


def test_a_worker_that_outlives_the_chief_is_stopped_after_worker_exit_secs(tmp_path, stop):
    run = Run(tmp_path, stop, {"chief": ["localhost:1"], "worker": ["localhost:2"]},
              {"worker:0": [{"ignore_term": True}]}, worker_exit_secs=1.0, grace_secs=0.5)
    assert run.run().exit_code == exit_codes.OK
    assert run.first("worker:0", "start") < run.first("chief:0", "exit 0")
    assert run.record("worker:0")["exit_code"] == -signal.SIGKILL


def test_a_local_process_says_its_end_once_its_status_and_output_are_in():
    """The loop is woken by `on_end` (see test_supervisor_loop): by then the process's exit status and its
    last line must be there for it to read."""
    lines, ended = [], threading.Event()
    proc = LocalProcess([sys.executable, "-c", "print('last words'); raise SystemExit(3)"], dict(os.environ),
                        lines.append, on_end=ended.set)
    assert ended.wait(30)
    assert proc.poll() == 3 and lines == ["last words\n"]
