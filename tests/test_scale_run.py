"""`launcher scale` on a real run (docs/elastic.md): local2 with one worker, scaled to 3 workers and back to 1
while it trains. The added workers train (their logs show steps), the chief, the ps and worker:0 keep their
first process, the removed workers exit 0 without counting as failures or restarts, run.json records each
change, and exactly --train_steps updates reach the variables."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import checkpoint_steps, last_run, read_variables, wait_for

TRAIN_STEPS = 3000  # paced, the run stays far from it while the test scales; then it runs at full speed


def _steps_logged(log) -> int:
    """How many training-step lines a task's log has ("loss = ..., step = N", its LoggingTensorHook's)."""
    return len(re.findall(r"loss = .*, step = \d+", log.read_text(errors="replace"))) if log.exists() else 0


def _scale(runner, model_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launcher", "scale", str(model_dir), *args], cwd=runner.tmp_path,
                          env=runner.env(), capture_output=True, text=True, timeout=120)


def test_local2_scaled_to_three_workers_and_back_keeps_every_survivor(runner, tmp_path):
    model_dir = tmp_path / "model"
    logs = model_dir / "logs"
    pace = tmp_path / "pace"
    pace.write_text("0.25")  # the run stays short of its target while the test scales it
    flags = f"--pace_file={pace}"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.paced",
                          "--train_steps", str(TRAIN_STEPS),
                          f"--chief_flags={flags}", f"--worker_flags={flags}")
    wait_for(lambda: _steps_logged(logs / "worker-0.log") >= 1 or launch.proc.poll() is not None, 300,
             "worker:0 training")
    assert launch.proc.poll() is None, launch.stderr[-3000:]

    refused = _scale(runner, model_dir, "--workers", "-1")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    up = _scale(runner, model_dir, "--workers", "3")
    assert up.returncode == 0 and "workers 1 -> 3" in up.stdout, (up.stdout, up.stderr)
    for name in ("worker-1", "worker-2"):
        # two lines: its first step, and 100 steps later (the hook logs every 100)
        wait_for(lambda: _steps_logged(logs / f"{name}.log") >= 2 or launch.proc.poll() is not None, 300,
                 f"{name} training")
    assert launch.proc.poll() is None, launch.stderr[-3000:]

    down = _scale(runner, model_dir, "--workers", "1")
    assert down.returncode == 0 and "workers 3 -> 1" in down.stdout, (down.stdout, down.stderr)
    for name in ("worker-1", "worker-2"):
        wait_for(lambda: f"{name.replace('-', ':')} left" in launch.stdout, 120, f"{name} leaving")
    pace.write_text("0")
    assert launch.wait(600) == 0, launch.stderr[-3000:]

    run = last_run(model_dir)
    tasks = {f"{t['job']}:{t['index']}": t for t in run["tasks"]}
    for name in ("chief:0", "ps:0", "worker:0"):
        assert len(tasks[name]["attempts"]) == 1, (name, tasks[name])
    for name in ("worker:1", "worker:2"):
        assert tasks[name]["restarts"] == 0 and tasks[name]["exit_codes"] == [0], tasks[name]
        assert tasks[name]["steps"] >= 100
    changes = [(c["task"], c["change"]) for c in run["membership"]]
    assert changes[:4] == [("worker:1", "join"), ("worker:2", "join"), ("worker:2", "leave"),
                           ("worker:1", "leave")], changes
    assert sorted(changes[4:]) == [("worker:1", "left"), ("worker:2", "left")]
    assert [c["workers"] for c in run["membership"][:4]] == [2, 3, 2, 1]
    assert checkpoint_steps(model_dir)[-1] == TRAIN_STEPS
    assert read_variables(model_dir)["applied_updates"] == TRAIN_STEPS  # whoever joined or left
    assert "worker:1 left (exited 0)" in launch.stdout


def test_scale_refusals_are_one_line_and_exit_2(runner, tmp_path):
    (tmp_path / "idle").mkdir()
    cases = {("idle", "--workers", "3"): "no run holds this model directory",
             ("missing", "--workers", "3"): "not a directory",
             ("idle", "--ps", "2", "--workers", "1"): "--ps: the number of ps is fixed for a run",
             ("idle", "--chief", "0"): "--chief: a run has one chief",
             ("idle", "--workers", "1:3"): "--workers '1:3': not a whole number",
             ("idle",): "--workers N is required"}
    for (name, *args), said in cases.items():
        result = _scale(runner, tmp_path / name, *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and said in result.stderr, (args, result)
    assert list((tmp_path / "idle").iterdir()) == []  # nothing left behind
