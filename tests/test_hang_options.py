"""The watchdog's options and `launcher report`: bad input is one line, exit 2, nothing started."""

import pytest

from conftest import last_run


@pytest.mark.parametrize("args, words", [
    (["--on_hang", "ignore"], ["--on_hang 'ignore'", "restart, abort, report"]),
    (["--hang_secs", "-5"], ["--hang_secs -5", "not a non-negative number"]),
    (["--hang_secs", "0.5"], ["--hang_secs 0.5", "at least 1 s"]),
    (["--straggler_ratio", "1"], ["--straggler_ratio 1", "more than 1"]),
])
def test_bad_watchdog_options_are_refused_before_anything_starts(runner, tmp_path, args, words):
    launch = runner.run("run", "--spec", "local1", "--model_dir", str(tmp_path / "model"), *args, timeout=60)
    assert launch.proc.returncode == 2
    lines = launch.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and all(w in lines[0] for w in words), lines
    assert not (tmp_path / "model").exists()


def test_report_of_a_directory_without_runs_is_one_line(runner, tmp_path):
    launch = runner.run("report", str(tmp_path), timeout=60)
    assert launch.proc.returncode == 2
    assert launch.stderr.strip().splitlines() == [f"error: {tmp_path}/run.json: no runs recorded "
                                                  f"(has `launcher run --model_dir {tmp_path}` run?)"]
