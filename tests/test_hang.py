"""Hangs: a task that stops making progress while its process lives is detected, named and acted on.

Real clusters, real SIGSTOP of a task's process (always SIGKILLed by the launcher or the runner fixture's
teardown, which kills whatever the test started), and a test model whose input blocks on one worker.
"""

import html
import os
import signal
import time

from conftest import checkpoint_steps, last_run, wait_for

HANG_SECS = 15
SLOW = "--step_sleep_secs=0.05"


def task_pids(launch) -> dict[str, int]:
    """The launcher's live task processes by name (its children, or its warm process's)."""
    return {name: proc.pid for name, proc in launch.tasks().items()}


def _start(runner, model_dir, *extra, train_steps=800):
    return runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.hang",
                        "--train_steps", str(train_steps), "--hang_secs", str(HANG_SECS),
                        f"--chief_flags={SLOW} --save_checkpoint_steps=50", f"--worker_flags={SLOW}",
                        "--ps_flags=--recovery_deadline_secs=120", *extra)


def _stop_mid_run(launch, model_dir, victim) -> float:
    wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= 50], what="a checkpoint at step 50")
    os.kill(task_pids(launch)[victim], signal.SIGSTOP)
    return time.time()


def _tasks(run):
    return {f"{t['job']}:{t['index']}": t for t in run["tasks"]}


def _run_with_a_stopped_task(runner, model_dir, victim):
    """local2 with `victim` SIGSTOPped mid-run, to its end (exit 0): the run record and its first hang,
    checked as detected in time with `victim` named."""
    launch = _start(runner, model_dir)
    stopped_at = _stop_mid_run(launch, model_dir, victim)
    assert launch.wait(400) == 0, launch.stderr
    run = last_run(model_dir)
    hang = run["hangs"][0]
    _assert_detected(hang, stopped_at, victim)
    return launch, run, hang


def _assert_detected(hang, stopped_at, culprit):
    assert hang["culprits"] == [culprit], hang
    assert f"{culprit} alive but stopped (SIGSTOP)" in hang["verdict"], hang["verdict"]
    assert hang["detected"] - stopped_at <= HANG_SECS + 10, hang["detected"] - stopped_at
    assert hang["stacks"][culprit].endswith(tuple("0123456789")) and culprit.replace(":", "-") in hang["stacks"][culprit]


def test_stopped_worker_is_named_restarted_and_training_reaches_the_target(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch, run, hang = _run_with_a_stopped_task(runner, model_dir, "worker:0")
    assert "chief:0 training normally" in hang["verdict"]
    assert hang["action"] == "restart"
    assert "[launcher] hang" in launch.stdout and "worker:0 killed: it hung; restarting" in launch.stdout
    assert _tasks(run)["worker:0"]["restarts"] == 1 and _tasks(run)["chief:0"]["restarts"] == 0
    assert run["global_step_end"] == 800 and checkpoint_steps(model_dir)[-1] == 800


def test_stopped_ps_is_the_culprit_not_the_tasks_waiting_on_it(runner, tmp_path):
    model_dir = tmp_path / "model"
    _, run, hang = _run_with_a_stopped_task(runner, model_dir, "ps:0")
    assert "chief:0 and worker:0 wait for it" in hang["verdict"], hang["verdict"]
    assert {name: t["restarts"] for name, t in _tasks(run).items()} == {"chief:0": 0, "worker:0": 0, "ps:0": 1}
    assert run["global_step_end"] == 800


def test_stopped_chief_is_named_and_restarted(runner, tmp_path):
    model_dir = tmp_path / "model"
    _, run, _ = _run_with_a_stopped_task(runner, model_dir, "chief:0")
    assert _tasks(run)["chief:0"]["restarts"] == 1 and run["global_step_end"] == 800


def test_input_blocked_on_one_worker_is_named_with_where_it_blocks(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", str(_two_workers(tmp_path)),
                          "--model_dir", str(model_dir), "--model", "models.hang", "--train_steps", "1500",
                          "--hang_secs", str(HANG_SECS), f"--chief_flags={SLOW}",
                          f"--worker_flags={SLOW} --block_input_on=worker:1 --block_after_steps=30")
    assert launch.wait(400) == 0, launch.stderr
    run = last_run(model_dir)
    hang = run["hangs"][0]
    assert hang["culprits"] == ["worker:1"], hang
    assert "worker:1 alive" in hang["verdict"] and "blocked_input" in hang["verdict"], hang["verdict"]
    assert "chief:0 and worker:0 training normally" in hang["verdict"], hang["verdict"]
    # The stacks are in the worker's log, under the header the verdict points at.
    path, line = hang["stacks"]["worker:1"].rsplit(":", 1)
    dump = open(path).read().splitlines()[int(line) - 1:]
    assert dump[0].startswith("=== launcher: stacks of worker:1"), dump[:2]
    assert any("hang.py" in l and "blocked_input" in l for l in dump[:200]), dump[:60]
    assert not hang["end_of_run"] and hang["action"] == "restart"
    assert _tasks(run)["worker:1"]["restarts"] == 1 and run["global_step_end"] == 1500


def test_on_hang_abort_stops_the_run_with_its_own_code_and_a_checkpoint(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = _start(runner, model_dir, "--on_hang", "abort", train_steps=100000)
    _stop_mid_run(launch, model_dir, "worker:0")
    assert launch.wait(400) == 3, launch.stderr
    assert "hung: hang:" in launch.stderr and "worker:0 alive but stopped" in launch.stderr, launch.stderr
    run = last_run(model_dir)
    assert run["outcome"] == "hung" and run["exit_code"] == 3 and run["hangs"][0]["action"] == "abort"
    # The chief saved at the step it reached, after the hang was seen.
    assert run["global_step_end"] == checkpoint_steps(model_dir)[-1] >= run["hangs"][0]["step"]


def test_on_hang_report_explains_only_and_the_end_of_run_gives_up_on_the_worker(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = _start(runner, model_dir, "--on_hang", "report", train_steps=600)
    stopped_at = _stop_mid_run(launch, model_dir, "worker:0")
    assert launch.wait(400) == 0, launch.stderr
    run = last_run(model_dir)
    first, last = run["hangs"][0], run["hangs"][-1]
    _assert_detected(first, stopped_at, "worker:0")
    assert first["action"] == "report" and "--on_hang report: nothing done" in launch.stdout
    # The chief waited for the stopped worker's last report no longer than the watchdog allows.
    assert last["end_of_run"] and last["culprits"] == ["worker:0"] and last["action"] == "stop", last
    assert "gave up waiting for the last report of worker:0" in last["verdict"]
    assert _tasks(run)["worker:0"]["restarts"] == 0 and run["global_step_end"] == 600

    # `launcher report` tells the same story, on the terminal and in a self-contained page.
    report = runner.run("report", str(model_dir), timeout=60)
    assert report.proc.returncode == 0, report.stderr
    assert f"hangs: {len(run['hangs'])}" in report.stdout and first["verdict"] in report.stdout
    page = (model_dir / "report.html").read_text()
    assert page.count('class="attempt ') == 3  # one process each of chief, worker, ps
    assert page.count('class="hang"') == len(run["hangs"]) and html.escape(first["verdict"]) in page
    assert 'class="steps"' in page  # the global step over time
    assert "<script" not in page and "src=" not in page and "href=" not in page  # nothing fetched


def _two_workers(tmp_path):
    spec = tmp_path / "two_workers.json"
    spec.write_text('{"chief": ["localhost:0"], "worker": ["localhost:0", "localhost:0"]}')
    return spec
