"""Synchronous training (SyncReplicasOptimizer) on real clusters, and a model's own hooks.

A model's own SyncReplicasOptimizer and --sync_replicas train to exactly the target, each global step one
aggregated update; a backup worker keeps training going while a worker is stopped; a killed worker
rejoins; preemption saves; bad --backup_workers values are refused before anything starts.
"""

import json
import os
import signal
import time

import pytest

from conftest import checkpoint_steps, last_run, logged_step, read_variables, wait_for

CLUSTER = {"chief": ["localhost:0"], "worker": ["localhost:0", "localhost:0"], "ps": ["localhost:0"]}


def _spec(tmp_path, **extra):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**CLUSTER, **extra}))
    return path


def _tasks(run):
    return {f"{t['job']}:{t['index']}": t for t in run["tasks"]}


def _log(model_dir, name):
    return (model_dir / "logs" / f"{name.replace(':', '-')}.log").read_text()


def test_model_with_its_own_sync_replicas_optimizer_and_hooks(runner, tmp_path):
    """SyncReplicasOptimizer(GradientDescentOptimizer, replicas_to_aggregate=3, total_num_replicas=3) on a
    chief, 2 workers and a ps (and an evaluator, which exports): every global step is one aggregated
    update; the model's training, chief and evaluation hooks run where they should."""
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", str(_spec(tmp_path, evaluator=["localhost:0"])), "--model_dir",
                        str(model_dir), "--model", "models.sync_counting", "--train_steps", "300", timeout=300)
    assert launch.proc.returncode == 0, launch.stderr
    variables = read_variables(model_dir)
    assert (variables["applied_updates"], variables["global_step"], checkpoint_steps(model_dir)[-1]) == (300, 300, 300)
    assert "sync_rep_local_step" not in variables  # a local variable: per session, never in a checkpoint
    run = last_run(model_dir)
    assert run["eval"]["step"] == 300
    assert (model_dir / "export" / "300" / "saved_model.pb").exists()
    tasks = _tasks(run)
    # Synchronous: every replica pushed a gradient for (about) every step, none raced ahead.
    assert all(tasks[n]["steps"] >= 250 for n in ("chief:0", "worker:0", "worker:1")), tasks
    for name in ("chief:0", "worker:0", "worker:1"):
        assert "each step aggregates 3 of 3 replicas' gradients" in _log(model_dir, name)
        assert f"model hook training_hooks on {name}:" in _log(model_dir, name)
    assert "model hook training_chief_hooks on chief:0:" in _log(model_dir, "chief:0")
    assert "training_chief_hooks" not in _log(model_dir, "worker:0") + _log(model_dir, "worker:1")
    assert "model hook evaluation_hooks on evaluator:0: 1 runs" in _log(model_dir, "evaluator:0")


def _rate(series, start, end):
    """Global steps per second between two times, from run.json's (time, step) samples."""
    inside = [(t, s) for t, s in series if start <= t <= end]
    assert len(inside) >= 3, (start, end, series)
    (t0, s0), (t1, s1) = inside[0], inside[-1]
    return (s1 - s0) / (t1 - t0)


def test_backup_worker_keeps_training_while_a_worker_is_stopped(runner, tmp_path):
    model_dir = tmp_path / "model"
    # Paced steps (50 ms each): the rates compared are the cluster's, not those of two cores shared with
    # other tests, and about 50 s of training at some 16 steps/s leave the cores to them.
    launch = runner.start("run", "--spec", str(_spec(tmp_path)), "--model_dir", str(model_dir),
                          "--model", "models.probe", "--train_steps", "800", "--sync_replicas",
                          "--backup_workers", "1", "--chief_flags=--log_step_count_steps=50 --step_sleep_secs=0.05",
                          "--worker_flags=--step_sleep_secs=0.05")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 300, timeout=180, what="step 300")
    time.sleep(8)  # a stretch of steady training before the pause, to compare with
    worker = launch.tasks()["worker:1"]
    stopped_at = time.time()
    worker.send_signal(signal.SIGSTOP)
    try:
        time.sleep(15)
    finally:
        worker.send_signal(signal.SIGCONT)
    resumed_at = time.time()
    assert launch.wait(300) == 0, launch.stderr
    run = last_run(model_dir)
    assert run["global_step_end"] == 800 and checkpoint_steps(model_dir)[-1] == 800
    assert read_variables(model_dir)["global_step"] == 800
    series = run["global_step_series"]
    before = _rate(series, stopped_at - 8, stopped_at)
    during = _rate(series, stopped_at + 1, resumed_at)
    assert during >= 0.5 * before, (before, during)
    # Nobody was left waiting for a token at the end: every replica ended by itself, exit 0.
    assert {name: (t["restarts"], t["exit_codes"]) for name, t in _tasks(run).items()} == {
        name: (0, [0]) for name in ("chief:0", "worker:0", "worker:1", "ps:0")}


@pytest.mark.parametrize("victim", ["worker:1", "chief:0"])
def test_killed_replica_rejoins_synchronous_training(runner, tmp_path, victim):
    """Without backup workers every step needs every replica: the restarted replica's first push (which
    needs no token) completes the step the others wait in; a restarted chief, whose ps lived on, joins
    their variables and aggregates again."""
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", str(_spec(tmp_path)), "--model_dir", str(model_dir),
                          "--model", "models.sync_counting", "--train_steps", "400",
                          "--chief_flags=--step_sleep_secs=0.02 --log_step_count_steps=20",
                          "--worker_flags=--step_sleep_secs=0.05")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 60, timeout=180, what="step 60")
    os.kill(launch.tasks()[victim].pid, signal.SIGKILL)
    assert launch.wait(300) == 0, launch.stderr
    run = last_run(model_dir)
    tasks = _tasks(run)
    assert {name: t["restarts"] for name, t in tasks.items()} == {
        name: int(name == victim) for name in ("chief:0", "worker:0", "worker:1", "ps:0")}
    assert tasks[victim]["exit_codes"][0] == -signal.SIGKILL
    variables = read_variables(model_dir)
    assert (variables["applied_updates"], variables["global_step"], checkpoint_steps(model_dir)[-1]) == (400, 400, 400)
    # The restarted replica trained: its new process had a session and stepped.
    assert len(tasks[victim]["attempts"]) == 2 and tasks[victim]["attempts"][1]["sessions"], tasks[victim]
    if victim == "chief:0":
        assert "joining them instead of restoring" in _log(model_dir, "chief:0")


@pytest.mark.parametrize("frozen_worker", [False, True])
def test_preempted_synchronous_run_saves_at_the_step_reached(runner, tmp_path, frozen_worker):
    """With a worker frozen, the chief's own step waits for a token that no aggregation will bring: asked to
    stop, the chief puts a token in for every replica, and its step, and the others' in flight, end."""
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", str(_spec(tmp_path)), "--model_dir", str(model_dir),
                          "--model", "models.sync_counting", "--train_steps", "100000", "--grace_secs", "20",
                          "--chief_flags=--step_sleep_secs=0.02 --save_checkpoint_secs=3600 --log_step_count_steps=10",
                          "--worker_flags=--step_sleep_secs=0.05")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 40, timeout=180, what="step 40")
    if frozen_worker:
        frozen = launch.tasks()["worker:1"]
        frozen.send_signal(signal.SIGSTOP)
        time.sleep(3)  # every step now waits for it
    reached = logged_step(model_dir / "logs" / "chief-0.log")
    launch.proc.send_signal(signal.SIGTERM)
    try:
        assert launch.wait(90) == 143, launch.stderr
    finally:
        if frozen_worker and frozen.is_running():
            frozen.send_signal(signal.SIGCONT)
    saved = checkpoint_steps(model_dir)[-1]
    assert saved >= reached
    run = last_run(model_dir)
    assert run["global_step_end"] == saved
    # The chief and the live worker stopped by themselves after their step (none killed after the grace):
    # the chief saved.
    codes = {name: t["exit_codes"][-1] for name, t in _tasks(run).items()}
    assert (codes["chief:0"], codes["worker:0"]) == (143, 143), codes
    if frozen_worker:
        assert "asked to stop: releasing the replicas waiting for a token" in _log(model_dir, "chief:0")
    else:
        assert codes["worker:1"] == 143, codes
    variables = read_variables(model_dir)
    assert variables["global_step"] == variables["applied_updates"] == saved


def test_frozen_worker_without_backup_workers_is_the_hang_culprit(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", str(_spec(tmp_path)), "--model_dir", str(model_dir),
                          "--model", "models.sync_counting", "--train_steps", "300", "--hang_secs", "15",
                          "--chief_flags=--step_sleep_secs=0.02 --log_step_count_steps=20",
                          "--worker_flags=--step_sleep_secs=0.05")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 40, timeout=180, what="step 40")
    os.kill(launch.tasks()["worker:1"].pid, signal.SIGSTOP)
    assert launch.wait(300) == 0, launch.stderr  # the culprit is killed and restarted (--on_hang restart)
    run = last_run(model_dir)
    hang = run["hangs"][0]
    assert hang["culprits"] == ["worker:1"], hang
    assert "worker:1 alive but stopped (SIGSTOP)" in hang["verdict"], hang
    assert "chief:0 and worker:0 wait for it" in hang["verdict"], hang
    assert _tasks(run)["worker:1"]["restarts"] == 1
    assert read_variables(model_dir)["applied_updates"] == 300


@pytest.mark.parametrize("args, message", [
    (["--sync_replicas", "--backup_workers", "3"],
     "error: --backup_workers 3: must be below the number of training tasks, 3 in "),
    (["--backup_workers", "1"], "error: --backup_workers 1 needs --sync_replicas"),
    (["--sync_replicas", "--backup_workers", "-1"], "error: --backup_workers -1 is not a non-negative integer"),
    (["--sync_replicas", "--worker_flags=--backup_workers=1"],
     "--backup_workers is set by the launcher for every task; give it to `launcher run` instead"),
])
def test_bad_backup_workers_refused_before_anything_starts(runner, tmp_path, args, message):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", str(_spec(tmp_path)), "--model_dir", str(model_dir), *args, timeout=60)
    assert launch.proc.returncode == 2
    assert launch.stderr.count("\n") == 1 and message in launch.stderr, launch.stderr
    assert not model_dir.exists()
