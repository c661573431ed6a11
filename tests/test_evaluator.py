"""The evaluator scores checkpoints beside training; the run ends once the final checkpoint is scored."""

import json

from conftest import last_run


def test_evaluator_scores_the_final_checkpoint(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chief": ["localhost:0"], "evaluator": ["localhost:0"]}))
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", "400",
                        "--chief_flags=--save_checkpoint_steps=100")
    assert launch.proc.returncode == 0, launch.stderr
    run = last_run(model_dir)
    assert run["eval"]["step"] == 400
    assert set(run["eval"]["metrics"]) == {"mse", "loss"}
    assert run["eval"]["metrics"]["mse"] < 0.05  # the linear model has learnt y = 3x + 2
    evaluator = next(t for t in run["tasks"] if t["job"] == "evaluator")
    assert evaluator["exit_code"] == 0
    assert list((model_dir / "eval").glob("events.out.tfevents.*")), "no eval summaries for TensorBoard"


def test_bundled_mlp_trains_with_its_evaluator(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chief": ["localhost:0"], "evaluator": ["localhost:0"]}))
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", "200",
                        "--model", "launcher.models.mlp", "--chief_flags=--save_checkpoint_steps=50",
                        "--evaluator_flags=--mlp_width=64", "--chief_flags=--mlp_width=64 --save_checkpoint_steps=50")
    assert launch.proc.returncode == 0, launch.stderr
    run = last_run(model_dir)
    assert run["eval"]["step"] == 200 and run["global_step_end"] == 200
    # The teacher's outputs have variance around 0.5; a trained student does far better.
    assert run["eval"]["metrics"]["mse"] < 0.2, run["eval"]
