"""The evaluator scores the whole eval set at every checkpoint, keeps the best one, and exports it for serving.

The test model's eval set is 5 batches of different sizes behind a one-shot iterator, so each metric has one
exact value over the whole set (per checkpoint) that no single batch, and no stale or exhausted iterator,
would give. TensorFlow runs only in subprocesses: the events files, checkpoints and SavedModels are read back
the way a user would read them.
"""

import json

import numpy as np
import pytest

import tf_reader
from conftest import checkpoint_steps, last_run
from models.eval_batches_data import EVAL_X, EVAL_Y, batches

SPEC = {"chief": ["localhost:0"], "evaluator": ["localhost:0"]}
STEPS = 200


def eval_history(model_dir) -> dict[int, dict[str, float]]:
    """Each scored checkpoint's metrics, from the evaluator's TensorBoard events."""
    code = """
history = {}
for path in tf.io.gfile.glob(sys.argv[1] + "/eval/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(path):
        for value in event.summary.value:
            history.setdefault(event.step, {})[value.tag] = value.simple_value
print(json.dumps(history))
"""
    return {int(step): metrics for step, metrics in tf_reader.run_json(code, str(model_dir)).items()}


def checkpoint_variables(prefix) -> dict:
    code = ("r = tf.train.load_checkpoint(sys.argv[1])\n"
            "print(json.dumps({n: r.get_tensor(n).tolist() for n in r.get_variable_to_shape_map()}))")
    return tf_reader.run_json(code, str(prefix))


def serve(export_dir, x: np.ndarray) -> np.ndarray:
    """Predictions of a SavedModel, loaded as TensorFlow Serving users load it, for inputs `x`."""
    code = """
model = tf.saved_model.load(sys.argv[1])
outputs = model.signatures["serving_default"](x=tf.constant(json.loads(sys.argv[2]), tf.float32))
print(json.dumps(outputs["y"].numpy().tolist()))
"""
    return np.array(tf_reader.run_json(code, str(export_dir), json.dumps(x.tolist())), dtype=np.float32)


def expected(variables: dict) -> dict[str, float]:
    """The metrics over the whole eval set for the linear model's variables w and b."""
    w, b = np.array(variables["w"], np.float32), np.array(variables["b"], np.float32)
    return {"mse": float(np.mean((EVAL_X @ w + b - EVAL_Y) ** 2)), "label_mean": float(EVAL_Y.mean())}


def _train(runner, tmp_path, chief_flags: str, *flags: str):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    # Slowed steps: checkpoints come every ~1.5 s (50 steps), so the evaluator scores several of them.
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", str(STEPS),
                        "--model", "models.eval_batches",
                        f"--chief_flags=--slow_steps_secs=0.03 --save_checkpoint_steps=50 {chief_flags}", *flags)
    assert launch.proc.returncode == 0, launch.stderr
    return model_dir


def test_every_checkpoint_is_scored_on_the_whole_eval_set_and_the_final_one_exported(runner, tmp_path):
    model_dir = _train(runner, tmp_path, "--max_to_keep=10")
    history = eval_history(model_dir)
    assert len(history) >= 2, f"the evaluator scored only {sorted(history)}"
    assert STEPS in history
    for step, metrics in history.items():
        want = expected(checkpoint_variables(model_dir / f"model.ckpt-{step}"))
        assert metrics["label_mean"] == pytest.approx(want["label_mean"], rel=1e-6), step
        assert metrics["mse"] == pytest.approx(want["mse"], rel=1e-5, abs=1e-9), step
    # No batch alone has the whole set's mean: a score over one batch would be caught above.
    assert all(abs(y.mean() - EVAL_Y.mean()) > 1e-3 for _, y in batches())

    run = last_run(model_dir)
    assert run["eval"]["step"] == STEPS
    assert run["eval"]["metrics"]["mse"] == pytest.approx(history[STEPS]["mse"], rel=1e-6)

    export = model_dir / "export" / str(STEPS)
    assert (export / "saved_model.pb").is_file() and (export / "variables").is_dir()
    assert [p.name for p in (model_dir / "export").iterdir()] == [str(STEPS)]  # nothing half-written left
    final = checkpoint_variables(model_dir / f"model.ckpt-{STEPS}")
    x = np.array([[-2.0], [0.0], [0.25], [7.0]], np.float32)
    want = x @ np.array(final["w"], np.float32) + np.array(final["b"], np.float32)
    np.testing.assert_allclose(serve(export, x), want, rtol=1e-6)


def test_keep_best_keeps_the_best_checkpoint_beyond_max_to_keep_and_exports_it(runner, tmp_path):
    # Slow learning: the eval mse dips around step 50 and rises after (see eval_batches_data), so the best
    # checkpoint is one that max_to_keep=1 deletes long before the end, and step 0's score is beaten.
    model_dir = _train(runner, tmp_path, "--max_to_keep=1 --learning_rate=0.01",
                       "--evaluator_flags=--keep_best=mse")
    history = eval_history(model_dir)
    assert len(history) >= 3, f"the evaluator scored only {sorted(history)}"
    best_step = min(history, key=lambda step: history[step]["mse"])
    assert 0 < best_step < STEPS, history
    assert best_step not in checkpoint_steps(model_dir)

    score = json.loads((model_dir / "best" / "score.json").read_text())
    assert score["step"] == best_step and score["metric"] == "mse"
    assert score["value"] == pytest.approx(history[best_step]["mse"], rel=1e-6)
    kept = sorted(p.name for p in (model_dir / "best").glob("model.ckpt-*.index"))
    assert kept == [f"model.ckpt-{best_step}.index"]  # earlier bests were replaced, not piled up
    variables = checkpoint_variables(model_dir / "best" / f"model.ckpt-{best_step}")
    assert variables["global_step"] == best_step
    assert expected(variables)["mse"] == pytest.approx(score["value"], rel=1e-5)

    # The SavedModel is the best checkpoint's, not the final one's.
    assert [p.name for p in (model_dir / "export").iterdir()] == [str(best_step)]
    x = np.array([[-2.0], [0.5], [3.0]], np.float32)
    want = x @ np.array(variables["w"], np.float32) + np.array(variables["b"], np.float32)
    np.testing.assert_allclose(serve(model_dir / "export" / str(best_step), x), want, rtol=1e-6)


def test_keep_best_carries_on_from_the_kept_score_when_a_run_resumes(runner, tmp_path):
    # models.plateau scores min(global step, 200): with `plateau:min` every later checkpoint is worse.
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))

    def train(steps: int) -> None:
        launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", str(steps),
                            "--model", "models.plateau", "--keep_best", "plateau:min",
                            "--chief_flags=--save_checkpoint_steps=50")
        assert launch.proc.returncode == 0, launch.stderr[-3000:]

    train(20)
    score_file = model_dir / "best" / "score.json"
    kept = score_file.stat()
    best = json.loads(score_file.read_text())["step"]
    assert best <= 20  # the final step's, or an earlier one's (step 0's, if the evaluator saw it)
    train(300)  # resumes at step 20, whose checkpoint the new evaluator may score first
    assert last_run(model_dir)["global_step_end"] == 300
    # Carried on: no checkpoint of the second run beat the kept score; a fresh evaluator would have taken
    # its first score as the best and written score.json anew.
    assert json.loads(score_file.read_text())["step"] == best
    assert (score_file.stat().st_ino, score_file.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert [p.name for p in (model_dir / "export").iterdir()] == [str(best)]  # the best one, for serving
    assert len(eval_history(model_dir)) >= 2


def test_eval_steps_limits_each_score_to_that_many_batches(runner, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", "20",
                        "--model", "models.eval_batches", "--evaluator_flags=--eval_steps=2")
    assert launch.proc.returncode == 0, launch.stderr
    first_two = np.concatenate([y for _, y in batches()][:2])
    assert last_run(model_dir)["eval"]["metrics"]["label_mean"] == pytest.approx(float(first_two.mean()), rel=1e-6)


def test_without_an_evaluator_the_chief_exports_the_final_model(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "120",
                        "--model", "models.eval_batches", "--chief_flags=--save_checkpoint_steps=50")
    assert launch.proc.returncode == 0, launch.stderr
    assert [p.name for p in (model_dir / "export").iterdir()] == ["120"]
    final = checkpoint_variables(model_dir / "model.ckpt-120")
    x = np.array([[-1.0], [3.5]], np.float32)
    want = x @ np.array(final["w"], np.float32) + np.array(final["b"], np.float32)
    np.testing.assert_allclose(serve(model_dir / "export" / "120", x), want, rtol=1e-6)
