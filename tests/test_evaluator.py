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
