"""--early_stop METRIC --patience N: training ends once the evaluator sees no improvement N times in a row."""

import json
import re

import pytest

from conftest import checkpoint_steps, last_run


def test_training_stops_early_when_the_eval_metric_stops_improving(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chief": ["localhost:0"], "worker": ["localhost:0"], "ps": ["localhost:0"],
                                "evaluator": ["localhost:0"]}))
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", "20000",
                        "--model", "models.plateau", "--early_stop", "plateau:max", "--patience", "2",
                        "--chief_flags=--save_checkpoint_steps=50")
    assert launch.proc.returncode == 0, launch.stderr[-3000:]
    run = last_run(model_dir)
    stopped = run["early_stop"]
    # The metric peaked at step 200; two later evaluations without improvement stop training.
    best = re.fullmatch(r"plateau has not improved for 2 evaluations \(best 200 at step (\d+)\)", stopped["reason"])
    assert best and int(best.group(1)) >= 200, stopped
    assert stopped["evaluated_step"] > 200 and stopped["step"] >= stopped["evaluated_step"]
    assert stopped["step"] < 20000 and checkpoint_steps(model_dir)[-1] == stopped["step"] == run["global_step_end"]
    assert f"succeeded: stopped early at step {stopped['step']}: plateau has not improved" in launch.stdout
    assert {t["job"]: t["exit_code"] for t in run["tasks"] if t["job"] != "ps"} == {
        "chief": 0, "worker": 0, "evaluator": 0}
    # Exported for serving: the checkpoint whose evaluation decided (the chief's last one is not scored).
    assert [p.name for p in (model_dir / "export").iterdir()] == [str(stopped["evaluated_step"])]
    assert (model_dir / "export" / str(stopped["evaluated_step"]) / "saved_model.pb").is_file()


@pytest.mark.parametrize("option, value", [("early_stop", "loss"), ("keep_best", "loss"), ("patience", "3")])
def test_evaluator_options_need_an_evaluator(runner, tmp_path, option, value):
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(tmp_path / "m"), f"--{option}", value)
    assert launch.proc.returncode == 2
    [line] = launch.stderr.strip().splitlines()
    assert line.startswith(f"error: --{option} needs an evaluator, and the spec ")
    assert line.endswith('local2.json has none (add "evaluator": ["localhost:0"] to its cluster)')
    assert not (tmp_path / "m").exists()
