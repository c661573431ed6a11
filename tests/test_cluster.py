"""A real cluster from one command: training to the target, resuming, flag routing, failure, SIGTERM."""

import json
import re
import signal

from conftest import checkpoint_steps, last_run, logged_step, read_variables, wait_for


def _tasks(run: dict) -> dict:
    return {f"{t['job']}:{t['index']}": t for t in run["tasks"]}


def test_local1_trains_resumes_and_reruns_without_training(runner, tmp_path):
    model_dir = tmp_path / "model"
    common = ["run", "--spec", "local1", "--model_dir", str(model_dir),
              "--chief_flags=--save_checkpoint_steps=100"]

    first = runner.run(*common, "--train_steps", "300")
    assert first.proc.returncode == 0, first.stderr
    assert "succeeded" in first.stdout
    assert checkpoint_steps(model_dir)[-1] == 300
    weights = read_variables(model_dir)
    assert abs(weights["w"][0][0] - 3.0) < 0.5 and abs(weights["b"][0] - 2.0) < 0.5, weights
    assert last_run(model_dir)["global_step_end"] == 300
    assert (model_dir / "logs" / "chief-0.log").stat().st_size > 0

    second = runner.run(*common, "--train_steps", "500")
    assert second.proc.returncode == 0, second.stderr
    run = last_run(model_dir)
    chief = _tasks(run)["chief:0"]
    # Restored, not re-initialised: it started at 300 and ran only the 200 steps left.
    assert (run["global_step_start"], run["global_step_end"]) == (300, 500)
    assert chief["start_step"] == 300 and chief["steps"] == 200, chief
    assert "restoring" in (model_dir / "logs" / "chief-0.log").read_text()
    assert checkpoint_steps(model_dir)[-1] == 500

    third = runner.run(*common, "--train_steps", "500")
    assert third.proc.returncode == 0, third.stderr
    run = last_run(model_dir)
    assert _tasks(run)["chief:0"]["steps"] == 0
    assert run["global_step_end"] == 500
    assert len(json.loads((model_dir / "run.json").read_text())["runs"]) == 3


def test_local2_every_task_trains_and_role_flags_reach_only_their_role(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"], "ps": ["localhost:0"]},
        "flags": {"chief": ["--probe=spec-chief"], "worker": ["--probe=spec-worker"]}}))
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--model", "models.probe",
                        "--train_steps", "600", "--chief_flags=--step_sleep_secs=0.005",
                        "--worker_flags=--probe=cli-worker --step_sleep_secs=0.005")
    assert launch.proc.returncode == 0, launch.stderr
    assert (model_dir / "probe-chief-0.txt").read_text() == "spec-chief"
    # The spec's flags come first, the command line's after them: the later value wins.
    assert (model_dir / "probe-worker-0.txt").read_text() == "cli-worker"
    run = last_run(model_dir)
    tasks = _tasks(run)
    assert tasks["chief:0"]["steps"] > 0 and tasks["worker:0"]["steps"] > 0, tasks
    assert tasks["chief:0"]["exit_code"] == 0 and tasks["worker:0"]["exit_code"] == 0
    assert all(t["first_step_secs"] for name, t in tasks.items() if not name.startswith("ps"))
    # Exactly at the target, although two tasks step concurrently.
    assert run["global_step_end"] == 600 and checkpoint_steps(model_dir)[-1] == 600
    assert re.search(r"^\[worker:0\] ", launch.stdout, re.M), "worker output is not prefixed"
    assert re.search(r"^step 600/600 \(100%\) .*chief:0 done, worker:0 done", launch.stdout, re.M), launch.stdout[-500:]
    # Everything the console showed of the worker is in its log file too.
    log = (model_dir / "logs" / "worker-0.log").read_text()
    shown = [line[len("[worker:0] "):] for line in launch.stdout.splitlines() if line.startswith("[worker:0] ")]
    assert shown and all(line in log for line in shown), shown


def test_exception_in_one_worker_fails_the_run_and_names_it(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.probe",
                        "--train_steps", "100000", "--worker_flags=--fail_on=worker")
    assert launch.proc.returncode == 1, launch.stderr
    assert "worker:0 exited 1" in launch.stderr
    assert "probe model told to fail on worker" in launch.stderr
    run = last_run(model_dir)
    assert run["outcome"] == "failed" and _tasks(run)["worker:0"]["restarts"] == 0


def test_sigterm_stops_every_task_after_a_final_checkpoint(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.probe",
                          "--train_steps", "100000", "--chief_flags=--save_checkpoint_secs=3600 --log_step_count_steps=10 "
                          "--step_sleep_secs=0.005",
                          "--worker_flags=--step_sleep_secs=0.005")
    log = model_dir / "logs" / "chief-0.log"
    wait_for(lambda: logged_step(log) >= 20, what="the chief's step 20")
    assert set(launch.tasks()) == {"chief:0", "worker:0", "ps:0"}
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait(60) == 143, launch.stderr
    assert runner.leftovers() == []
    saved = checkpoint_steps(model_dir)[-1]
    assert saved >= 20  # saved at SIGTERM: the periodic saver would not have run for an hour
    run = last_run(model_dir)
    assert run["outcome"] == "preempted" and run["global_step_end"] == saved
    assert f"newest checkpoint at step {saved}: run the same command again" in launch.stderr
    assert _tasks(run)["chief:0"]["exit_code"] == 143

    # The checkpoint is named by the step its hook read; a worker's step still in flight as the variables were
    # read may be in it too (seen: "model.ckpt-27" holding global step 28). The resumed run starts from what
    # the checkpoint holds, nothing less.
    held = read_variables(model_dir, saved)["global_step"]
    assert saved <= held <= saved + 2, (saved, held)
    resumed = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps",
                         str(held + 10))
    assert resumed.proc.returncode == 0, resumed.stderr
    assert _tasks(last_run(model_dir))["chief:0"]["start_step"] == held


def test_second_launcher_on_the_same_model_dir_is_refused(runner, tmp_path):
    model_dir = tmp_path / "model"
    first = runner.start("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.probe",
                         "--train_steps", "100000", "--chief_flags=--step_sleep_secs=0.01")
    wait_for(lambda: "chief:0" in first.tasks(), what="the first run's chief")
    second = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "10")
    assert second.proc.returncode == 2, second.stderr
    assert f"is in use by launcher pid {first.proc.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(60) == 143
    assert len(json.loads((model_dir / "run.json").read_text())["runs"]) == 1  # the refused run left no record
