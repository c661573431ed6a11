"""What the README promises about the end of a run, signals, restart policies and cluster shapes, end to end.

Real launchers, real task processes on loopback; tests/models/probe.py makes a task slow, fail, fail once,
ignore SIGTERM, or wait for another task's failure, so that each test controls the order of events.
"""

import json
import os
import signal

from conftest import checkpoint_steps, last_run, logged_step, read_variables, wait_for


def _tasks(run: dict) -> dict:
    return {f"{t['job']}:{t['index']}": t for t in run["tasks"]}


def _spec(tmp_path, cluster: dict):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(cluster))
    return str(path)


# --- the end of a run ---------------------------------------------------------------------------------------

def test_failed_evaluator_ends_the_run_with_1_while_training_finishes(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = _spec(tmp_path, {"chief": ["localhost:0"], "evaluator": ["localhost:0"]})
    # The chief builds its model only once the evaluator has failed: training happens after the failure.
    launch = runner.run("run", "--spec", spec, "--model_dir", str(model_dir), "--model", "models.probe",
                        "--train_steps", "100", "--chief_flags=--start_after=failed-evaluator-0",
                        "--evaluator_flags=--fail_on=evaluator")
    assert launch.proc.returncode == 1, launch.stderr
    assert "evaluator:0 exited 1" in launch.stderr
    assert "probe model told to fail on evaluator" in launch.stderr
    run = last_run(model_dir)
    tasks = _tasks(run)
    assert tasks["chief:0"]["exit_codes"] == [0] and tasks["chief:0"]["steps"] == 100
    assert tasks["evaluator:0"]["exit_codes"] == [1]
    assert run["outcome"] == "failed" and run["global_step_end"] == 100
    assert checkpoint_steps(model_dir)[-1] == 100


# --- signals to the launcher --------------------------------------------------------------------------------

def _start_stubborn_chief(runner, model_dir, grace_secs):
    """A chief alone that ignores SIGTERM once it trains."""
    launch = runner.start("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.probe",
                          "--train_steps", "100000", "--grace_secs", str(grace_secs),
                          "--chief_flags=--ignore_sigterm --step_sleep_secs=0.01 --log_step_count_steps=10")
    # A logged step means build() has run: SIGTERM is ignored from here on.
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 10, what="the chief's step 10")
    return launch


def test_task_that_outlives_the_grace_is_killed(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = _start_stubborn_chief(runner, model_dir, grace_secs=2)
    chief = launch.tasks()["chief:0"]
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait(60) == 143, launch.stderr
    assert not chief.is_running()
    assert _tasks(last_run(model_dir))["chief:0"]["exit_codes"] == [-signal.SIGKILL]


def test_second_signal_kills_at_once(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = _start_stubborn_chief(runner, model_dir, grace_secs=3600)
    launch.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "received SIGTERM" in launch.stdout, what="the launcher to start stopping its tasks")
    launch.proc.send_signal(signal.SIGINT)
    # With an hour of grace, only the second signal can end the run within the wait.
    assert launch.wait(60) == 143, launch.stderr
    assert _tasks(last_run(model_dir))["chief:0"]["exit_codes"] == [-signal.SIGKILL]


# --- restart policies ---------------------------------------------------------------------------------------

def test_restart_policy_never_fails_the_run_on_a_killed_worker(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = _spec(tmp_path, {"chief": ["localhost:0"], "worker": ["localhost:0"]})
    launch = runner.start("run", "--spec", spec, "--model_dir", str(model_dir), "--model", "models.probe",
                          "--train_steps", "100000", "--restart_policy", "never",
                          "--chief_flags=--step_sleep_secs=0.01 --log_step_count_steps=10",
                          "--worker_flags=--step_sleep_secs=0.01 --log_step_count_steps=10")
    wait_for(lambda: logged_step(model_dir / "logs" / "worker-0.log") >= 10, what="the worker's step 10")
    os.kill(launch.tasks()["worker:0"].pid, signal.SIGKILL)
    assert launch.wait(90) == 1, launch.stderr
    assert "worker:0 killed by SIGKILL" in launch.stderr
    run = last_run(model_dir)
    assert run["outcome"] == "failed"
    assert _tasks(run)["worker:0"]["exit_codes"] == [-signal.SIGKILL] and _tasks(run)["worker:0"]["restarts"] == 0


def test_restart_policy_on_failure_restarts_a_task_that_exited_1(runner, tmp_path):
    model_dir = tmp_path / "model"
    # The chief raises in its first attempt only; the run can reach its target only through a restart.
    launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.probe",
                        "--train_steps", "50", "--restart_policy", "on_failure",
                        "--chief_flags=--fail_once_on=chief")
    assert launch.proc.returncode == 0, launch.stderr
    restart = next(line for line in launch.stdout.split("\n[") if line.startswith("launcher] chief:0 exited 1"))
    assert "RuntimeError: probe model told to fail once on chief" in restart and "; restarting (1/3)" in restart
    run = last_run(model_dir)
    chief = _tasks(run)["chief:0"]
    assert chief["exit_codes"] == [1, 0] and chief["restarts"] == 1 and chief["steps"] == 50
    assert run["global_step_end"] == 50 and checkpoint_steps(model_dir)[-1] == 50


# --- cluster shapes -----------------------------------------------------------------------------------------

# The chief steps once a second: the workers must do the training, or the run would not end within the wait.
SLOW_CHIEF = "--chief_flags=--step_sleep_secs=1"
WORKERS = "--worker_flags=--step_sleep_secs=0.005"


def _assert_workers_trained_to(model_dir, train_steps, workers):
    run = last_run(model_dir)
    tasks = _tasks(run)
    for name in workers:
        assert tasks[name]["exit_codes"] == [0] and tasks[name]["steps"] > 0, tasks[name]
    assert run["global_step_end"] == train_steps
    assert checkpoint_steps(model_dir)[-1] == train_steps
    assert read_variables(model_dir)["global_step"] == train_steps


def test_chief_and_workers_without_ps_train_to_the_target(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = _spec(tmp_path, {"chief": ["localhost:0"], "worker": ["localhost:0", "localhost:0"]})
    launch = runner.run("run", "--spec", spec, "--model_dir", str(model_dir), "--model", "models.probe",
                        "--train_steps", "300", SLOW_CHIEF, WORKERS)
    assert launch.proc.returncode == 0, launch.stderr
    _assert_workers_trained_to(model_dir, 300, ["worker:0", "worker:1"])


def test_local4_stops_exactly_at_the_target_with_three_asynchronous_workers(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local4", "--model_dir", str(model_dir), "--model", "models.probe",
                        "--train_steps", "300", SLOW_CHIEF, WORKERS)
    assert launch.proc.returncode == 0, launch.stderr
    _assert_workers_trained_to(model_dir, 300, ["worker:0", "worker:1", "worker:2"])
