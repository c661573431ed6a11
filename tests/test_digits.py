"""The bundled digits model learns, is judged on its whole held-out set, and is served as it was judged."""

import json

import pytest

import tf_reader
from conftest import last_run

pytest.importorskip("sklearn", reason="launcher.models.digits needs scikit-learn (the `digits` extra)")

STEPS = 300


def test_digits_trains_to_high_accuracy_and_its_savedmodel_scores_the_same(runner, tmp_path, monkeypatch):
    # tf.compat.v1.layers (batch normalisation) needs Keras 2 in every task.
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chief": ["localhost:0"], "evaluator": ["localhost:0"]}))
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", str(STEPS),
                        "--model", "launcher.models.digits", "--chief_flags=--save_checkpoint_steps=100")
    assert launch.proc.returncode == 0, launch.stderr
    run = last_run(model_dir)
    assert run["eval"]["step"] == STEPS
    accuracy = run["eval"]["metrics"]["accuracy"]
    assert accuracy > 0.9, run["eval"]  # chance is 0.1

    # The SavedModel of the final checkpoint, fed the held-out images as raw pixels, is as accurate as the
    # evaluator found that checkpoint over the whole held-out set.
    export = model_dir / "export" / str(STEPS)
    assert (export / "saved_model.pb").is_file()
    code = """
from launcher.models import digits
_, (images, labels) = digits.split()
model = tf.saved_model.load(sys.argv[1])
outputs = model.signatures["serving_default"](pixels=tf.constant(images))
print(json.dumps({"accuracy": float((outputs["class"].numpy() == labels).mean()), "examples": len(labels),
                  "probability_sums": outputs["probabilities"].numpy().sum(axis=1).tolist()}))
"""
    served = tf_reader.run_json(code, str(export))
    assert served["examples"] > 300  # the whole held-out fifth of 1797 images
    assert served["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert served["probability_sums"] == pytest.approx([1.0] * served["examples"], abs=1e-5)
