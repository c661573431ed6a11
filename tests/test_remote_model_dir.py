"""A URL model directory for `launcher run`: refused before anything starts, never a local `gs:` directory."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("url", ["gs://bucket/run", "s3://bucket/run", "hdfs://namenode/run"])
def test_run_refuses_a_url_model_dir(runner, url):
    launch = runner.run("run", "--spec", "local2", "--model_dir", url, "--train_steps", "5", timeout=120)
    assert launch.proc.returncode == 2
    assert launch.stderr.startswith("error: ") and launch.stderr.count("\n") == 1, launch.stderr
    assert url in launch.stderr and "launcher export" in launch.stderr
    assert not (runner.tmp_path / (url.split("://")[0] + ":")).exists()
    assert not list(runner.tmp_path.glob("*:*")), "a local directory named after the URL"
    assert "[chief:0]" not in launch.stdout  # no task was started
