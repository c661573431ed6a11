"""Every decision of the supervisor's loop, in-process: a fake backend and a fake clock play scripted task
processes (tests/loop_fakes.py), so each run takes milliseconds. What only real processes show stays in
tests/test_supervisor.py."""

from __future__ import annotations

import signal

import pytest

from launcher.cluster import exit_codes, status, task_env
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import Address, TaskId
from launcher.launch import events
from launcher.launch.backends import Move, PlacementError
from launcher.launch.diagnosis import Diagnosis, Probe
from launcher.launch.policies import hang
from launcher.launch.policies.restart import Ended, RestartRules, Verdict, Why
from launcher.launch.task_state import Attempt, Phase, TaskState
from launcher.launch.watchdog import Alarm, Silence
from loop_fakes import LoopRun

pytestmark = pytest.mark.unit

CHIEF_WORKER = {"chief": ["localhost:1"], "worker": ["localhost:2"]}
GO, FINISH = task_env.GO_SIGNAL, task_env.FINISH_SIGNAL


def test_a_run_succeeds_and_the_ps_is_stopped_after_chief_and_worker(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 3}], "worker:0": [{"train": 5}]})
    outcome = run.run()
    assert outcome.exit_code == exit_codes.OK and outcome.summary == "training reached step 100"
    assert {str(s.task): s.phase for s in run.supervisor.states.values()} == {
        "chief:0": Phase.DONE, "worker:0": Phase.DONE, "ps:0": Phase.STOPPED}
    assert run.backend.got("ps:0", signal.SIGTERM)[0] >= 5  # once the worker had exited, at 5 s after GO
    assert run.supervisor.step_series and run.supervisor.step_series[-1][1] == run.backend.step
    assert run.ended_at < 10


# -- the start gate --

def test_no_task_passes_the_gate_before_every_task_is_ready(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 1}], "worker:0": [{"ready": 4.0, "train": 1}]})
    assert run.run().exit_code == exit_codes.OK
    assert min(run.backend.got(t, GO)[0] for t in ("chief:0", "worker:0", "ps:0")) >= 4.0


def test_a_restarted_task_goes_on_as_soon_as_it_is_ready_and_gets_go_once(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 6}], "worker:0": [{"die": 1.0}, {"ready": 2.0, "train": 1}]})
    assert run.run().exit_code == exit_codes.OK
    go = run.backend.got("worker:0", GO)
    assert len(go) == 2 and go[1] - go[0] >= 2.0  # the new process's GO came once it was READY
    assert "worker:0 killed by SIGKILL; restarting (1/2)" in run.console


def test_a_bad_input_ends_the_run_before_any_task_goes_on(tmp_path):
    run = LoopRun(tmp_path, {"worker:0": [{"error": "--worker_flags[0]: '--x=1': Unknown flag"}]})
    outcome = run.run()
    assert outcome.exit_code == exit_codes.BAD_INPUT
    assert outcome.summary == "--worker_flags[0]: '--x=1': Unknown flag (worker:0 exited 2)"
    assert not any(s == GO for *_, s in run.backend.signals)
    assert run.record("worker:0")["restarts"] == 0


def test_an_evaluator_that_fails_before_ready_opens_the_gate_and_fails_the_run(tmp_path):
    run = LoopRun(tmp_path, {"evaluator:0": [{"ready": 99}], "chief:0": [{"train": 2}]},
                  {"chief": ["localhost:1"], "evaluator": ["localhost:2"]})
    run.clock.at(1.0, lambda: run.backend.current[E0]._exit(1))  # it fails before READY
    outcome = run.run()
    assert run.backend.got("chief:0", GO), "the gate opened without the failed evaluator"
    assert outcome.exit_code == exit_codes.TRAINING_FAILED
    assert "training reached step 100, but the evaluator failed" in outcome.summary
    assert "evaluator:0 exited 1 (training failed); training goes on" in run.console


# -- what becomes of an ended process: the restart policy and its budget --

@pytest.mark.parametrize("policy, plan, restarted", [
    (RestartPolicy.EXIT_CODE, [{"die": 0.5}, {"train": 1}], True),
    (RestartPolicy.EXIT_CODE, [{"die": 0.5, "code": 1}, {"train": 1}], False),
    (RestartPolicy.ON_FAILURE, [{"die": 0.5, "code": 1}, {"train": 1}], True),
    (RestartPolicy.NEVER, [{"die": 0.5}, {"train": 1}], False),
], ids=["exit_code-signal", "exit_code-exception", "on_failure-exception", "never-signal"])
def test_restart_policies(tmp_path, policy, plan, restarted):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 3}], "worker:0": plan}, CHIEF_WORKER, policy=policy)
    outcome = run.run()
    assert run.record("worker:0")["restarts"] == (1 if restarted else 0)
    if restarted:
        assert outcome.exit_code == exit_codes.OK
    else:
        assert outcome.exit_code == exit_codes.TRAINING_FAILED and outcome.failure.task == TaskId("worker", 0)


def test_a_process_that_ends_is_restarted_at_once_not_at_the_next_look(tmp_path):
    """Its end wakes the loop (the backend's on_end): no wait for the next poll (POLL_SECS)."""
    run = LoopRun(tmp_path, {"chief:0": [{"train": 3}], "worker:0": [{"die": 0.55}, {"train": 1}]}, CHIEF_WORKER)
    assert run.run().exit_code == exit_codes.OK
    starts = [when for when, task, _ in run.backend.started if task == "worker:0"]
    first_go = next(when for when, task, attempt, signum in run.backend.signals
                    if task == "worker:0" and attempt == 1 and signum == GO)
    assert starts[1] == pytest.approx(first_go + 0.55), (first_go, starts)


def test_restarts_run_out(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"die": 0.5}]}, {"chief": ["localhost:1"]}, max_restarts=2)
    outcome = run.run()
    assert outcome.exit_code == exit_codes.TRAINING_FAILED
    assert run.record("chief:0")["exit_codes"] == [-9, -9, -9]
    assert "no restarts left (2 used)" in run.console


RULES = RestartRules(RestartPolicy.NEVER, max_restarts=1)
W0, E0 = TaskId("worker", 0), TaskId("evaluator", 0)


@pytest.mark.parametrize("ended, verdict, why", [
    (Ended(W0, 0, 0, training_over=False, killed_for="hang"), Verdict.DONE, None),
    (Ended(W0, -9, 0, training_over=False, killed_for="hang"), Verdict.RESTART, Why.HUNG),
    (Ended(W0, -9, 1, training_over=False, killed_for="hang"), Verdict.FAILED, Why.HUNG),
    (Ended(W0, -9, 0, training_over=False, killed_for="hang", killed_at_end=True), Verdict.NOT_NEEDED, None),
    (Ended(W0, -9, 5, training_over=False, restart_for="ps:0 moved"), Verdict.RESTART, Why.PEER_MOVED),
    (Ended(W0, 1, 0, training_over=True), Verdict.NOT_NEEDED, None),
    (Ended(W0, -9, 0, training_over=False), Verdict.FAILED, None),
    (Ended(E0, 1, 0, training_over=False), Verdict.EVALUATOR_FAILED, None),
    (Ended(E0, 2, 0, training_over=False), Verdict.FAILED, None),
], ids=["exit0-after-kill", "hung-restarts-whatever-the-policy", "hung-counts-against-the-budget",
        "killed-at-the-end", "peer-moved-outside-the-budget", "worker-after-the-final-save", "policy-never",
        "evaluator-fails-alone", "evaluator-bad-input-fails-the-run"])
def test_one_restart_policy_for_every_way_a_process_ends(ended, verdict, why):
    decision = RULES.decide(ended)
    assert (decision.verdict, decision.why) == (verdict, why)


def test_a_chief_that_dies_after_releasing_its_ps_gets_them_back(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"die": 2.0}, {"train": 1}], "ps:0": [{"serve": True, "die": 1.0, "code": 0},
                                                                                  {"serve": True}]},
                  {"chief": ["localhost:1"], "ps": ["localhost:3"]})
    assert run.run().exit_code == exit_codes.OK
    assert [n for _, t, n in run.backend.started if t == "ps:0"] == [1, 2]
    assert "ps:0 had ended after the chief's release; starting it again" in run.console


# -- node moves --

# A lost node's tasks move and nobody else restarts: tests/test_scale.py.


def test_a_task_that_cannot_be_placed_fails_the_run_with_the_reason(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 5}], "worker:0": [{"die": 1.0}]}, CHIEF_WORKER)
    run.backend.moves[TaskId("worker", 0)] = PlacementError("no node has 1 CPU free")
    outcome = run.run()
    assert outcome.exit_code == exit_codes.TRAINING_FAILED and "no node has 1 CPU free" in outcome.summary


# -- hangs --

def test_a_hang_restarts_its_culprit(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 30}], "worker:0": [{"freeze": 2.0}, {"train": 1}]})
    assert run.run().exit_code == exit_codes.OK
    first = run.supervisor.hangs[0]
    assert first["action"] == "restart" and first["culprits"] == ["worker:0"]
    assert run.record("worker:0")["attempts"][0]["killed_for"] == first["verdict"]
    assert run.record("worker:0")["restarts"] == 1 and "worker:0 killed: it hung; restarting" in run.console


def test_on_hang_report_does_nothing(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 25}], "worker:0": [{"freeze": 2.0}]}, on_hang="report",
                  worker_exit_secs=30)
    assert run.run().exit_code == exit_codes.OK
    assert run.supervisor.hangs[0]["action"] == "report" and "--on_hang report: nothing done" in run.console
    assert run.record("worker:0")["restarts"] == 0


def test_on_hang_abort_stops_the_run(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 30}], "worker:0": [{"freeze": 2.0}]}, on_hang="abort")
    outcome = run.run()
    assert outcome.exit_code == exit_codes.HUNG and outcome.summary == run.supervisor.hangs[0]["verdict"]
    assert run.backend.got("chief:0", signal.SIGTERM)  # stopped in order: the chief saves


def _states_after_a_restart(tmp_path, go_secs_ago: float):
    run = LoopRun(tmp_path, {})
    states = run.supervisor.states
    for state in states.values():
        run.supervisor._start(state)
        state.attempts[-1].go_at = 100.0
    worker = states[W0]
    # now is 130: the worker's restarted process began 8 s ago (or 25 s: "long", hang_secs is 10)
    worker.attempts.append(type(worker.attempts[0])(started=0.0, began_at=105.0 if go_secs_ago == "long" else 122.0))
    worker.attempts[-1].go_at = 130 - go_secs_ago if isinstance(go_secs_ago, float) else None
    return list(states.values())


@pytest.mark.parametrize("go_secs_ago, evidence, action", [
    (3.0, False, hang.WAIT), (3.0, True, hang.RESTART), (15.0, False, hang.RESTART),
    (None, False, hang.WAIT), ("long", False, hang.RESTART)],
    ids=["recovering-no-evidence-waits", "a-stopped-culprit-is-acted-on", "recovered-long-ago",
         "restarted-still-starting", "restarted-never-came-up"])
def test_a_verdict_without_a_culprit_does_not_restart_a_run_that_is_recovering(tmp_path, go_secs_ago, evidence,
                                                                               action):
    states = _states_after_a_restart(tmp_path, go_secs_ago)
    chief = TaskId("chief", 0)
    probes = tuple(Probe(s.task, "training", "T" if evidence and s.task == TaskId("ps", 0) else "S", None, 5, None)
                   for s in states)
    alarm = Alarm((Silence(chief, 11, False),), (Silence(chief, 11, False),), 11.0, 5, end_of_run=False)
    decision = hang.decide("restart", alarm, Diagnosis("hang: no global step", (chief,), probes), states,
                           now=130.0, hang_secs=10.0)
    assert decision.action == action
    assert decision.kill == (() if action == hang.WAIT else (chief,))


def test_a_run_recovering_from_a_restart_is_given_time_before_the_next_action(tmp_path):
    # Issue 14's case: a stopped ps is restarted; chief and worker wait for it in back-off, silent, and the
    # next verdict finds no culprit by evidence while the new ps came up moments ago: wait, not restart all.
    waits = {"train": 40, "pause": [2, 25]}
    run = LoopRun(tmp_path, {"chief:0": [waits], "worker:0": [waits],
                             "ps:0": [{"serve": True, "freeze": 2.0}, {"serve": True, "ready": 2.0}]})
    assert run.run().exit_code == exit_codes.OK
    first, second = run.supervisor.hangs[:2]
    assert first["action"] == "restart" and first["culprits"] == ["ps:0"]
    assert second["action"] == "wait" and "the run is recovering (ps:0 was restarted lately)" in run.console
    assert run.record("chief:0")["restarts"] == 0 and run.record("worker:0")["restarts"] == 0


# -- early stop --

def test_an_early_stop_finishes_chief_and_workers_once(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 60}], "worker:0": [{"train": 60}],
                             "evaluator:0": [{"early_stop": 3.0}]},
                  {**CHIEF_WORKER, "evaluator": ["localhost:3"]})
    run.clock.at(5.0, lambda: run.backend.current[E0]._status(status.EARLY_STOP, step=1, reason="again"))
    outcome = run.run()
    assert outcome.exit_code == exit_codes.OK
    assert outcome.summary.startswith("stopped early at step ")
    assert outcome.summary.endswith(": no better score in 5 evaluations")
    assert run.supervisor.early_stop["reason"] == "no better score in 5 evaluations"
    assert len(run.backend.got("chief:0", FINISH)) == 1 and len(run.backend.got("worker:0", FINISH)) == 1
    assert run.ended_at < 60


# -- signals to the launcher --

def test_a_task_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"ignore_term": True}]}, {"chief": ["localhost:1"]}, grace_secs=7.0)
    run.signal_at(1.0, signal.SIGTERM)
    outcome = run.run()
    assert outcome.exit_code == exit_codes.PREEMPTED and run.record("chief:0")["exit_code"] == -signal.SIGKILL
    assert run.backend.got("chief:0", signal.SIGKILL)[0] - run.backend.got("chief:0", signal.SIGTERM)[0] >= 7.0


def test_a_second_signal_kills_at_once(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"ignore_term": True}]}, {"chief": ["localhost:1"]}, grace_secs=600)
    run.signal_at(1.0, signal.SIGINT)
    run.signal_at(2.0, signal.SIGINT)
    outcome = run.run()
    assert outcome.exit_code == 128 + signal.SIGINT and run.record("chief:0")["exit_code"] == -signal.SIGKILL
    assert run.ended_at < 10


def test_a_signal_before_the_run_starts_starts_nothing(tmp_path):
    run = LoopRun(tmp_path, {})
    run.stop.receive(signal.SIGTERM)
    assert run.run().exit_code == exit_codes.PREEMPTED and run.backend.started == []


def test_the_ps_is_stopped_only_after_chief_and_workers(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 60}], "worker:0": [{"train": 60}]})
    run.signal_at(3.0, signal.SIGTERM)
    assert run.run().exit_code == exit_codes.PREEMPTED
    assert run.backend.got("ps:0", signal.SIGTERM)[0] >= max(run.backend.got("chief:0", signal.SIGTERM)[0],
                                                              run.backend.got("worker:0", signal.SIGTERM)[0])


# -- the end of a run --

def test_a_worker_frozen_early_is_given_up_once_the_chief_reaches_the_target(tmp_path):
    # The watchdog only reports (--on_hang report): the end of the run alone decides about the frozen worker.
    run = LoopRun(tmp_path, {"chief:0": [{"train": 50, "wait_workers": True}], "worker:0": [{"freeze": 2.0}]},
                  on_hang="report", hang_secs=120, worker_exit_secs=30)
    assert run.run().exit_code == exit_codes.OK
    last = run.supervisor.hangs[-1]
    assert last["end_of_run"] and last["action"] == "stop" and last["culprits"] == ["worker:0"]
    assert run.record("worker:0")["restarts"] == 0
    assert 50 <= run.backend.got("worker:0", signal.SIGKILL)[0] < 52  # at the target, not hang_secs later
    assert run.ended_at < 60


def test_a_worker_that_outlives_the_chief_is_stopped_after_worker_exit_secs(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 2}], "worker:0": [{"train": 100}]}, worker_exit_secs=4.0)
    assert run.run().exit_code == exit_codes.OK
    assert "gave up waiting for worker:0 after the chief's final save (4 s)" in run.console
    assert 6.0 <= run.ended_at < 8.0


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_a_worker_that_had_not_joined_when_the_chief_exited_is_dismissed_at_once(tmp_path, ignores_sigterm):
    # Its first process dies; the next one never gets a session (its ps were released as it started).
    late = {"ready": 0.1, "ignore_term": ignores_sigterm}
    run = LoopRun(tmp_path, {"chief:0": [{"train": 3}], "worker:0": [{"die": 1.0}, late]}, worker_exit_secs=30)
    assert run.run().exit_code == exit_codes.OK
    assert "worker:0 is not needed: training ended before it joined; stopping it" in run.console
    assert "gave up waiting" not in run.console and "hang" not in run.console
    dismissed = run.backend.got("worker:0", signal.SIGTERM)
    assert len(dismissed) == 1 and 3.0 <= dismissed[0] < 4.0  # when the chief exited, not 30 s later
    killed = run.backend.got("worker:0", signal.SIGKILL)
    if ignores_sigterm:  # DISMISS_GRACE_SECS later, at the loop's next look
        assert len(killed) == 1 and 5.0 <= killed[0] - dismissed[0] < 5.5, (killed, dismissed)
    else:
        assert killed == []
    record = run.record("worker:0")
    assert record["restarts"] == 1 and record["exit_code"] == (-9 if ignores_sigterm else 143)
    assert run.supervisor.states[TaskId("worker", 0)].phase is Phase.STOPPED
    assert run.ended_at < 10


@pytest.mark.parametrize("lost", [True, False])
def test_a_worker_re_creating_a_lost_session_when_the_chief_exited_is_dismissed_at_once(tmp_path, lost):
    # Its session fails at 1 s and is never made again (a moved ps, the chief's final save at 3 s); the
    # other worker keeps its session and ends its loop by itself at 4 s.
    worker = {"train": 4, "lose_session": 1.0} if lost else {"train": 4}
    run = LoopRun(tmp_path, {"chief:0": [{"train": 3}], "worker:0": [worker]}, worker_exit_secs=30)
    assert run.run().exit_code == exit_codes.OK
    dismissed = run.backend.got("worker:0", signal.SIGTERM)
    assert "gave up waiting" not in run.console and "hang" not in run.console
    if lost:
        assert "worker:0 is not needed: training ended while it was re-creating its session; stopping it" in run.console
        assert len(dismissed) == 1 and 3.0 <= dismissed[0] < 4.0  # when the chief exited, not 30 s later
        assert run.record("worker:0")["exit_code"] == 143
    else:
        assert "not needed" not in run.console and dismissed == []
        assert run.record("worker:0")["exit_code"] == 0


def test_a_task_that_only_re_creates_its_session_is_not_heard_from(tmp_path):
    # "no_session" lines are not signs of life: a worker whose sessions keep failing is still silent.
    task = TaskId("worker", 0)
    state = TaskState(task, output=None, attempts=[Attempt(started=0.0)])
    state.apply(events.from_status(task, {"event": "session", "step": 5}, 1.0, 1.0))
    state.apply(events.from_status(task, {"event": "no_session"}, 7.0, 7.0))
    attempt = state.attempts[-1]
    assert attempt.heard_at == 1.0 and not attempt.in_session and attempt.sessions == [(1.0, 5)]
    state.apply(events.from_status(task, {"event": "session", "step": 9}, 8.0, 8.0))
    assert attempt.heard_at == 8.0 and attempt.in_session


def test_the_run_waits_for_the_evaluators_last_score_at_most_eval_wait_secs(tmp_path):
    run = LoopRun(tmp_path, {"chief:0": [{"train": 2}], "evaluator:0": [{}]},
                  {"chief": ["localhost:1"], "evaluator": ["localhost:2"]}, eval_wait_secs=20)
    assert run.run().exit_code == exit_codes.OK
    assert 22.0 <= run.ended_at < 24.0


# -- failures as data --

def test_a_tasks_own_failure_report_is_the_root_cause(tmp_path):
    failure = {"type": "RuntimeError", "message": "model told to fail\nmore", "frame": "m.py:3 in build: raise X"}
    run = LoopRun(tmp_path, {"chief:0": [{"die": 1.0, "code": 1, "failure": failure}]}, {"chief": ["localhost:1"]})
    outcome = run.run()
    assert outcome.summary.splitlines()[:2] == ["chief:0 exited 1 (training failed): RuntimeError: model told to fail",
                                                "  at m.py:3 in build: raise X"]


def test_fields_of_the_wrong_type_are_ignored():
    task = TaskId("worker", 0)
    event = events.from_status(task, {"event": "progress", "step": "12", "local_steps": True}, 1.0, 2.0)
    assert event.step is None and event.local_steps is None
    event = events.from_status(task, {"event": "failure", "failure": {"type": "OSError", "errno": "28", "frame": 3}},
                               1.0, 2.0)
    assert event.failure == {"type": "OSError"}
    assert events.from_status(task, {"event": 5}, 1.0, 2.0) is None


def test_output_threads_only_queue_events(tmp_path):
    run = LoopRun(tmp_path, {})
    sup = run.supervisor
    for state in sup.states.values():
        sup._start(state)
    signals = len(run.backend.signals)
    for task in sup.states:
        sup._heard(task, {"event": "ready"})
    assert len(run.backend.signals) == signals and not any(s.ready for s in sup.states.values())
    sup._step()  # the loop applies them, and opens the gate
    assert all(s.ready for s in sup.states.values()) and len(run.backend.signals) == signals + 3
