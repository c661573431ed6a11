"""Checkpoints that are not what they seem: the chief finds a good one or refuses; it never starts over."""

import shutil

import pytest

from conftest import Runner, checkpoint_steps, last_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model directory with checkpoints at steps 0, 100, 200 and 300."""
    runner = Runner(tmp_path_factory.mktemp("trained"))
    model_dir = runner.tmp_path / "model"
    try:
        launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "300",
                            "--chief_flags=--save_checkpoint_steps=100")
        assert launch.proc.returncode == 0, launch.stderr
    finally:
        assert not runner.cleanup()
    assert checkpoint_steps(model_dir) == [0, 100, 200, 300]
    return model_dir


@pytest.fixture
def model_dir(trained, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    return copy


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _resume(runner, model_dir, *extra):
    return runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "400", *extra)


def _chief(model_dir):
    return next(t for t in last_run(model_dir)["tasks"] if t["job"] == "chief")


def _snapshot(model_dir):
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in model_dir.iterdir()
                  if p.name.startswith(("model.ckpt", "checkpoint")))


def test_garbled_state_file_does_not_send_the_chief_back_to_step_0(runner, model_dir):
    (model_dir / "checkpoint").write_text("model_checkpoint_path: {{{ garbled")
    launch = _resume(runner, model_dir)
    assert launch.proc.returncode == 0, launch.stderr
    assert _chief(model_dir)["start_step"] == 300
    assert checkpoint_steps(model_dir)[-1] == 400


@pytest.mark.parametrize("damage", ["truncated data", "missing index", "state names a file that is gone"])
def test_unreadable_newest_checkpoint_falls_back_to_the_previous_one(runner, model_dir, damage):
    newest = model_dir / "model.ckpt-300"
    if damage == "truncated data":
        _truncate(model_dir / "model.ckpt-300.data-00000-of-00001")
    elif damage == "missing index":
        (model_dir / "model.ckpt-300.index").unlink()
    else:
        for path in model_dir.glob("model.ckpt-300.*"):
            path.unlink()
    launch = _resume(runner, model_dir)
    assert launch.proc.returncode == 0, launch.stderr
    assert _chief(model_dir)["start_step"] == 200
    log = (model_dir / "logs" / "chief-0.log").read_text()
    assert f"skipping checkpoint {newest}" in log


def test_no_readable_checkpoint_is_refused_without_restarts(runner, model_dir):
    for data in model_dir.glob("model.ckpt-*.data-*"):
        _truncate(data)
    before = _snapshot(model_dir)
    launch = _resume(runner, model_dir)
    assert launch.proc.returncode == 2, launch.stderr
    assert "none of the 4 checkpoints reads back" in launch.stderr
    assert launch.stderr.rstrip().endswith("(chief:0 exited 2)")
    assert _chief(model_dir)["restarts"] == 0
    assert _snapshot(model_dir) == before


def test_model_that_does_not_match_its_checkpoint_lists_every_mismatch(runner, model_dir):
    before = _snapshot(model_dir)
    launch = _resume(runner, model_dir, "--model", "models.linear_renamed")
    assert launch.proc.returncode == 2, launch.stderr
    for mismatch in ("w: in the checkpoint [1, 1], not in the model",
                     "weight: in the model [1, 1], not in the checkpoint",
                     "extra: in the model [3], not in the checkpoint",
                     "b: shape [1] in the checkpoint, [2] in the model"):
        assert mismatch in launch.stderr
    assert _chief(model_dir)["restarts"] == 0
    assert _snapshot(model_dir) == before
