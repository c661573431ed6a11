"""Stragglers: a worker much slower than its peers is named with its ratio, and the run goes on."""

from conftest import last_run


def test_slow_worker_is_named_with_its_ratio_and_not_interrupted(runner, tmp_path):
    """One worker's steps take four times as long (the test model's --slow_task: a real sleep in each step,
    where a cgroup cpu.max throttle is not available: cgroup v2 without the cpu controller here)."""
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", str(_two_workers(tmp_path)),
                          "--model_dir", str(model_dir), "--model", "models.hang", "--train_steps", "1200",
                          "--chief_flags=--step_sleep_secs=0.1",
                          "--worker_flags=--step_sleep_secs=0.1 --slow_task=worker:1 --slow_factor=4")
    assert launch.wait(400) == 0, launch.stderr
    run = last_run(model_dir)
    assert [s["task"] for s in run["stragglers"]] == ["worker:1"], run["stragglers"]
    steps = {f"{t['job']}:{t['index']}": t["steps"] for t in run["tasks"]}
    # The truth, from the tasks' own step counts over the same run: peers' median / its steps.
    truth = (steps["chief:0"] + steps["worker:0"]) / 2 / steps["worker:1"]
    assert abs(run["stragglers"][0]["ratio"] - truth) <= 0.25 * truth, (run["stragglers"], steps)
    assert "straggler: worker:1 steps" in launch.stdout
    assert run["hangs"] == [] and all(t["restarts"] == 0 for t in run["tasks"])


def _two_workers(tmp_path):
    spec = tmp_path / "two_workers.json"
    spec.write_text('{"chief": ["localhost:0"], "worker": ["localhost:0", "localhost:0"]}')
    return spec
