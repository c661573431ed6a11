"""A chief that exports (a spec without an evaluator): its serving graph is checked before it builds its
training graph, and the final checkpoint is exported for serving once training reaches the target."""

import json

import tf_reader
from conftest import checkpoint_steps, read_variables

STEPS = 60


def test_a_chief_without_an_evaluator_exports_its_final_checkpoint(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", str(STEPS),
                        "--model", "models.plateau")
    assert launch.proc.returncode == 0, launch.stderr
    assert [p.name for p in (model_dir / "export").iterdir()] == [str(STEPS)]  # nothing half-written left
    variables = read_variables(model_dir, STEPS)
    code = """
model = tf.saved_model.load(sys.argv[1])
print(json.dumps(model.signatures["serving_default"](x=tf.constant([[2.0]]))["y"].numpy().tolist()))
"""
    served = tf_reader.run_json(code, str(model_dir / "export" / str(STEPS)))
    want = 2.0 * variables["w"][0][0] + variables["b"][0]
    assert abs(served[0][0] - want) < 1e-5, (served, variables)


def test_a_bad_serving_signature_ends_the_run_before_anything_is_trained_or_saved(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", str(STEPS),
                        "--model", "models.bad_serving")
    assert launch.proc.returncode == 2, launch.stderr
    assert "serving input 'x' must be a tf.compat.v1.placeholder" in launch.stderr
    assert "Traceback" not in launch.stderr
    assert checkpoint_steps(model_dir) == [] and not (model_dir / "export").exists()
    assert not list(model_dir.glob("events.out.tfevents.*"))  # checked before any hook began
    assert json.loads((model_dir / "run.json").read_text())["runs"][-1]["global_step_end"] in (None, 0)
