"""Elastic workers, the launcher's side: `launcher scale` (request, decision, what the loop does) and node
moves that restart nobody else, against the fake backend and clock (tests/loop_fakes.py); the request files
with real files and a real lock holder. The real-process acceptance run is tests/test_scale_run.py."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import pytest

from launcher.cluster import exit_codes, status, task_env, typed_json
from launcher.cluster.errors import UserError
from launcher.cluster.spec import Address, TaskId
from launcher.launch import events, model_dir_lock, run, run_progress, scale_requests
from launcher.launch.backends import Move
from launcher.launch.policies import scale
from launcher.launch.policies.restart import Ended, RestartRules, Verdict
from launcher.cluster.restart_policy import RestartPolicy
from launcher.launch.task_state import Attempt, Phase
from loop_fakes import LOCAL2, LoopRun

pytestmark = pytest.mark.unit

FINISH = task_env.FINISH_SIGNAL
W = {i: TaskId("worker", i) for i in range(5)}


def starts(run_: LoopRun, task: str) -> list[int]:
    return [n for _, t, n in run_.backend.started if t == task]


# -- scaling a run up and down --

def test_scaled_up_then_down_the_survivors_keep_their_first_process(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 20}], "worker:0": [{"train": 20}],
                              "worker:1": [{"train": 30}], "worker:2": [{"train": 30}]})
    run_.requests.ask(3.0, 3)
    run_.requests.ask(9.0, 1)
    outcome = run_.run()
    assert outcome.exit_code == exit_codes.OK
    for task in ("chief:0", "ps:0", "worker:0"):
        assert starts(run_, task) == [1], task
    assert starts(run_, "worker:1") == [1] and starts(run_, "worker:2") == [1]
    # the added workers got GO (the gate was open: as soon as READY), then FINISH, highest index first
    assert run_.backend.got("worker:1", task_env.GO_SIGNAL) and run_.backend.got("worker:2", task_env.GO_SIGNAL)
    assert run_.backend.got("worker:2", FINISH)[0] <= run_.backend.got("worker:1", FINISH)[0]
    assert not run_.backend.got("worker:0", FINISH) or run_.backend.got("worker:0", FINISH)[0] > 9.0
    assert [(ok, m.split(":")[0]) for ok, m in run_.requests.answers] == [(True, "workers 1 -> 3"),
                                                                           (True, "workers 3 -> 1")]
    changes = [(c["task"], c["change"], c["workers"]) for c in run_.supervisor.membership]
    assert changes[:4] == [("worker:1", "join", 2), ("worker:2", "join", 3), ("worker:2", "leave", 2),
                           ("worker:1", "leave", 1)]
    assert sorted(changes[4:]) == [("worker:1", "left", 1), ("worker:2", "left", 1)]  # in the order they ended
    for task in ("worker:1", "worker:2"):
        record = run_.record(task)
        assert record["restarts"] == 0 and record["exit_code"] == 0
    assert "1 worker |" in run_.console or "1 worker" in run_.console
    # the live cluster was published at each change, with the members only
    assert [len(c["worker"]) for _, c in run_.published] == [3, 1]
    assert run_.published[0][1]["worker"][1:] == ["localhost:101", "localhost:102"]


def test_a_worker_asked_to_leave_that_dies_is_neither_a_failure_nor_a_restart(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 10}], "worker:0": [{"train": 10}],
                              "worker:1": [{"train": 10, "freeze": 2.5}]},
                   {**LOCAL2, "worker": ["localhost:2", "localhost:4"]})
    run_.requests.ask(3.0, 1)  # it is frozen: the finish signal does nothing
    run_.clock.at(4.5, lambda: run_.backend.current[W[1]]._exit(-signal.SIGKILL))  # then it dies
    assert run_.run().exit_code == exit_codes.OK
    assert starts(run_, "worker:1") == [1]
    assert run_.supervisor.states[W[1]].phase is Phase.STOPPED


def test_a_worker_brought_back_is_a_join_not_a_restart(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 20}], "worker:0": [{"train": 20}],
                              "worker:1": [{"train": 30}]})
    run_.requests.ask(2.0, 2)
    run_.requests.ask(5.0, 1)
    run_.requests.ask(8.0, 2)
    assert run_.run().exit_code == exit_codes.OK
    assert starts(run_, "worker:1") == [1, 2]
    assert run_.record("worker:1")["restarts"] == 0


@pytest.mark.parametrize("workers, why", [(-1, "--workers -1: must be between 0 and 1000"),
                                          (1001, "--workers 1001: must be between 0 and 1000")])
def test_a_bad_number_of_workers_is_refused_in_one_line(tmp_path, workers, why):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 5}]})
    run_.requests.ask(1.0, workers)
    assert run_.run().exit_code == exit_codes.OK
    (ok, message), = run_.requests.answers
    assert not ok and message == why
    assert not run_.supervisor.membership


def test_a_run_past_its_target_is_not_scaled(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 2, "wait_workers": True}], "worker:0": [{"train": 6}]})
    run_.requests.ask(3.0, 3)
    assert run_.run().exit_code == exit_codes.OK
    assert run_.requests.answers == [(False, "the run has reached its target; its workers are finishing")]


def test_a_leaving_worker_is_forgotten_by_the_watchdog_and_killed_if_it_does_not_leave(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 30}], "worker:0": [{"train": 30}],
                              "worker:1": [{"train": 30, "freeze": 1.0}]},
                   {**LOCAL2, "worker": ["localhost:2", "localhost:4"]}, hang_secs=10)
    run_.requests.ask(2.0, 1)  # frozen: the finish signal does nothing
    assert run_.run().exit_code == exit_codes.OK
    assert run_.supervisor.hangs == []  # not a hang of the run: it was leaving
    [killed] = run_.backend.got("worker:1", signal.SIGKILL)
    assert 12.0 <= killed < 13.0
    assert "worker:1 was asked to leave 10 s ago and is still running; killing it" in run_.console
    record = run_.record("worker:1")
    assert record["restarts"] == 0 and record["exit_code"] == -signal.SIGKILL
    assert run_.supervisor.states[W[1]].phase is Phase.STOPPED


def test_scale_decisions():
    class S:
        def __init__(self, task, member=True, running=True):
            self.task, self.member, self.running = task, member, running
            self.phase, self.attempts = Phase.TRAINING, [Attempt(started=0.0)]

    states = [S(TaskId("chief", 0)), S(W[0]), S(W[1]), S(W[2])]
    assert scale.decide(states, 1).remove == (W[2], W[1])
    assert scale.decide(states, 5).add == (W[3], W[4])
    assert scale.decide(states, 3).message == "nothing to do"
    states[3].member = False  # worker:2 leaving, still running
    assert "worker:2 is still leaving" in scale.decide(states, 3).refused


def test_the_restart_policy_never_fails_a_leaving_worker():
    rules = RestartRules(RestartPolicy.NEVER, 0)
    assert rules.decide(Ended(W[1], 0, 0, False, leaving=True)).verdict is Verdict.DONE
    assert rules.decide(Ended(W[1], -9, 0, False, leaving=True)).verdict is Verdict.NOT_NEEDED


# -- moves: nobody else restarts --

def test_a_lost_node_moves_its_tasks_and_nobody_else_restarts(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 6}], "worker:0": [{"die": 1.0}, {"train": 1}],
                              "ps:0": [{"serve": True}]},
                   {"chief": ["h1:1"], "worker": ["h2:2"], "ps": ["h2:3"]})
    run_.backend.moves[W[0]] = Move(Address("h3", 2), "h2", "node h2 lost")
    run_.backend.moves[TaskId("ps", 0)] = Move(Address("h3", 3), "h2", "node h2 lost")
    assert run_.run().exit_code == exit_codes.OK
    assert starts(run_, "chief:0") == [1]  # the chief learns the addresses from the published cluster
    assert starts(run_, "ps:0") == [1, 2] and starts(run_, "worker:0") == [1, 2]
    assert "to learn the new address" not in run_.console
    (when, cluster), = run_.published
    assert cluster == {"chief": ["h1:1"], "worker": ["h3:2"], "ps": ["h3:3"]}
    # published before the moved tasks started again
    assert when <= min(t for t, task, n in run_.backend.started if n == 2)


def test_a_moved_worker_restarts_alone(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 6}], "worker:0": [{"die": 1.0}, {"train": 1}]},
                   {"chief": ["h1:1"], "worker": ["h2:2"], "ps": ["h1:3"]})
    run_.backend.moves[W[0]] = Move(Address("h3", 2), "h2", "node h2 lost")
    assert run_.run().exit_code == exit_codes.OK
    assert starts(run_, "chief:0") == [1] and starts(run_, "ps:0") == [1]
    assert run_.published[0][1]["worker"] == ["h3:2"]


# -- the progress line tells the truth --

def _event(task, kind, step, mono):
    return events.Status(task, kind, mono, 1_700_000_000.0 + mono, step=step)


def test_a_global_step_that_goes_back_is_a_rollback():
    progress = run_progress.RunProgress(10_000, 2.0)
    progress.apply(_event(W[0], status.PROGRESS, 4326, 1.0))
    progress.apply(_event(W[1], status.PROGRESS, 4300, 1.1))  # a late report of an older step: no rollback
    assert progress.global_step == 4326 and progress.rolled_back_from is None
    assert progress.apply(_event(TaskId("chief", 0), status.SESSION, 256, 2.0))
    assert progress.global_step == 256 and progress.rolled_back_from == 4326
    line, _ = progress.line([], 2.0, 0.0)
    assert line.startswith("step 256/10000 (2%) | rolled back from 4326")
    progress.apply(_event(W[0], status.PROGRESS, 4400, 30.0))
    assert progress.rolled_back_from is None


def test_a_silent_task_is_shown_as_silent(tmp_path):
    run_ = LoopRun(tmp_path, {"chief:0": [{"train": 20}], "worker:0": [{"train": 20, "pause": [3, 12]}]},
                   hang_secs=60)
    lines = []
    run_.clock.at(10.0, lambda: lines.append(run_.supervisor._progress.line(
        run_.supervisor.states.values(), run_.clock.now, run_.clock.time())[0]))
    assert run_.run().exit_code == exit_codes.OK
    assert "worker:0 silent" in lines[0] and "chief:0 training" in lines[0] and "| 1 worker |" in lines[0]


# -- the request files, with a real lock holder --

def _hold(model_dir, ready, done):
    with model_dir_lock.held(model_dir):
        ready.set()
        done.wait(30)


def test_scale_is_refused_for_a_directory_no_run_holds(tmp_path):
    with pytest.raises(UserError, match="no run holds this model directory"):
        scale_requests.send(str(tmp_path), 3)
    assert os.listdir(tmp_path) == []  # nothing left behind
    with pytest.raises(UserError, match="not a directory"):
        scale_requests.send(str(tmp_path / "missing"), 3)


def test_a_request_reaches_the_lock_holder_and_its_answer_comes_back(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        channel = scale_requests.Channel(str(tmp_path))

        def answer_when_asked(secs):  # the supervisor's side, polled while the asker waits
            request, refused = channel.poll()
            if request is not None:
                channel.answer(request, request.workers == 3, f"asked for {request.workers}")

        assert scale_requests.send(str(tmp_path), 3, sleep=answer_when_asked) == "asked for 3"
        with pytest.raises(UserError, match="refused: asked for 4"):
            scale_requests.send(str(tmp_path), 4, sleep=answer_when_asked)
        with pytest.raises(UserError, match="did not answer within 1 s"):
            scale_requests.send(str(tmp_path), 3, answer_secs=1.0, sleep=lambda s: None)
        assert not os.path.exists(tmp_path / scale_requests.REQUEST)
    finally:
        done.set()
        holder.join(30)


@pytest.mark.parametrize("text, refused", [
    ("not json", "Expecting value"), ("[1]", "not a JSON object"), ('{"id": "a b", "workers": 2}', "no valid id"),
    ('{"id": "ab", "workers": "2"}', "not a whole number"), ("x" * 5000, "larger than 4096 bytes"),
])
def test_a_bad_request_file_is_refused_and_removed(tmp_path, text, refused):
    channel = scale_requests.Channel(str(tmp_path))
    (tmp_path / scale_requests.REQUEST).write_text(text)
    request, why = channel.poll()
    assert request is None and refused in why
    assert not (tmp_path / scale_requests.REQUEST).exists()


def test_an_earlier_runs_request_is_never_acted_on(tmp_path):
    (tmp_path / scale_requests.REQUEST).write_text(json.dumps({"id": "old", "workers": 9}))
    channel = scale_requests.Channel(str(tmp_path))
    assert channel.poll() == (None, None)


def test_the_launcher_and_its_tasks_name_the_same_membership_file():
    from launcher.task import membership

    assert run.MEMBERSHIP_FILE == membership.MEMBERSHIP_FILE


# -- the report --

def test_the_report_shows_workers_joining_and_leaving_escaped():
    from launcher.launch import run_record
    from launcher.report import page, summary

    t0 = 1_700_000_000.0
    record = run_record.Run(
        started="2023-11-14T22:13:20+00:00", outcome="succeeded", ended="2023-11-14T22:15:00+00:00",
        tasks=[run_record.Task("chief", 0, attempts=[run_record.Attempt(t0, ended=t0 + 90, exit_code=0)]),
               run_record.Task("worker", 1, attempts=[run_record.Attempt(t0 + 10, ended=t0 + 40, exit_code=0)])],
        membership=[run_record.MembershipChange(t0 + 10, "worker:1", "join", 2),
                    run_record.MembershipChange(t0 + 38, "worker:1", "leave", 1),
                    run_record.MembershipChange(t0 + 40, "worker:1", "left", 1),
                    run_record.MembershipChange(t0 + 50, "<script>", "join", 3)])
    decoded = run_record.parse(json.dumps({"version": run_record.SCHEMA_VERSION,
                                           "runs": [typed_json.encode(record)]}))  # as `report` reads it
    html_page = page.render(decoded, "/m")
    assert html_page.count('class="membership join"') == 1  # the unknown task has no lane: no mark
    assert 'class="membership leave"' in html_page and 'class="membership left"' in html_page
    assert "worker:1 joined (2 workers after)" in html_page
    assert "<script>" not in html_page and "&lt;script&gt; joined &rarr; 3 workers" in html_page
    assert "workers: +10s worker:1 joined (2); +38s worker:1 asked to leave (1); +40s worker:1 left (1)" in \
        summary.render(decoded)
