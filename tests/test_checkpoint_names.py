"""Checkpoint steps read from file names, without TensorFlow."""

from __future__ import annotations

import pytest

from launcher.cluster.checkpoint_names import newest_step, step_of


@pytest.mark.parametrize("prefix, step", [
    ("model.ckpt-1200", 1200),
    ("/runs/a/model.ckpt-7", 7),
    ("model.ckpt", -1),
    ("model.ckpt-12x", -1),
])
def test_step_of(prefix, step):
    assert step_of(prefix) == step


def test_newest_step_is_the_highest_numbered_index_file(tmp_path):
    for name in ["model.ckpt-300.index", "model.ckpt-1200.index", "model.ckpt-1200.data-00000-of-00001",
                 "model.ckpt-5000.data-00000-of-00001", "checkpoint", "events.out.tfevents.1"]:
        (tmp_path / name).write_text("")
    assert newest_step(str(tmp_path)) == 1200  # by number, not by name; a .data file alone is no checkpoint


def test_no_checkpoints_gives_none(tmp_path):
    assert newest_step(str(tmp_path)) is None
    assert newest_step(str(tmp_path / "missing")) is None
