"""Real models train right: batch norm's moving statistics, exactly --train_steps updates under a race,
optimizers with lazily created slots, and workers that do not need the chief."""

import json
import os
import signal

import pytest

from conftest import checkpoint_steps, last_run, logged_step, read_variables, wait_for


def _tasks(run):
    return {f"{t['job']}:{t['index']}": t for t in run["tasks"]}


def test_batch_norm_moving_statistics_follow_the_data(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chief": ["localhost:0"], "evaluator": ["localhost:0"]}))
    env_before = os.environ.pop("TF_USE_LEGACY_KERAS", None)  # the task program must set it by itself
    try:
        launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--model", "models.batch_norm",
                            "--train_steps", "150", "--chief_flags=--save_checkpoint_steps=150")
    finally:
        if env_before is not None:
            os.environ["TF_USE_LEGACY_KERAS"] = env_before
    assert launch.proc.returncode == 0, launch.stderr
    variables = read_variables(model_dir)
    # The inputs have mean 3 and variance 4 in every feature; the layer starts at 0 and 1.
    assert variables["batch_norm/moving_mean"] == pytest.approx([3.0] * 4, abs=0.3)
    assert variables["batch_norm/moving_variance"] == pytest.approx([4.0] * 4, abs=0.8)
    run = last_run(model_dir)
    assert run["eval"]["step"] == 150
    # Inference normalises with the moving statistics: good only if they moved (y has variance 30; with
    # the initial 0 and 1 it would be about 66).
    assert run["eval"]["metrics"]["mse"] < 1.0, run["eval"]


def test_racing_workers_apply_exactly_train_steps_updates(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chief": ["localhost:0"], "worker": ["localhost:0", "localhost:0"],
                                "ps": ["localhost:0"]}))
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--model", "models.counting",
                        "--train_steps", "400", timeout=300)
    assert launch.proc.returncode == 0, launch.stderr
    run = last_run(model_dir)
    tasks = _tasks(run)
    # Every task was training at the target (each applied some updates), so all of them raced to it.
    assert all(tasks[name]["steps"] > 0 for name in ("chief:0", "worker:0", "worker:1")), tasks
    variables = read_variables(model_dir)
    assert (variables["applied_updates"], variables["global_step"], checkpoint_steps(model_dir)[-1]) == (400, 400, 400)


@pytest.mark.parametrize("optimizer, slot", [("adam", "w/Adam"), ("momentum", "w/Momentum"),
                                             ("keras_adam", "Adam/w/m")])
def test_optimizer_with_lazy_slots_trains_and_resumes(runner, tmp_path, optimizer, slot):
    model_dir = tmp_path / "model"

    def train(steps):
        launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.counting",
                            "--train_steps", str(steps), f"--chief_flags=--optimizer={optimizer}")
        assert launch.proc.returncode == 0, launch.stderr
        return read_variables(model_dir)

    first = train(30)
    assert first["applied_updates"] == 30 and first[slot] != [[0.0]]
    second = train(60)
    # Restored, not re-initialised: the counter and the slots carried on from the first run.
    assert (second["applied_updates"], second["global_step"]) == (60, 60)
    assert last_run(model_dir)["global_step_start"] == 30
    assert second[slot] != first[slot]
    assert abs(second["w"][0][0] - 3.0) < abs(first["w"][0][0] - 3.0)
