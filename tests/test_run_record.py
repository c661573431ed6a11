"""run.json: one entry per run, appended, and an unreadable record kept aside rather than lost."""

from __future__ import annotations

import json

import pytest

from launcher.launch import run_record


def test_append_keeps_every_run_in_order(tmp_path):
    run_record.append(str(tmp_path), {"run": 1, "outcome": "ok"})
    run_record.append(str(tmp_path), {"run": 2, "outcome": "failed"})
    assert run_record.read(str(tmp_path)) == [{"run": 1, "outcome": "ok"}, {"run": 2, "outcome": "failed"}]
    assert json.loads((tmp_path / "run.json").read_text()) == {"runs": [{"run": 1, "outcome": "ok"},
                                                                        {"run": 2, "outcome": "failed"}]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary file left behind


def test_no_record_reads_as_no_runs(tmp_path):
    assert run_record.read(str(tmp_path)) == []


@pytest.mark.parametrize("unreadable", ["{half a rec", '{"other": []}', "[1, 2]"])
def test_unreadable_record_is_moved_aside_and_a_fresh_one_started(tmp_path, unreadable):
    (tmp_path / "run.json").write_text(unreadable)
    run_record.append(str(tmp_path), {"run": 3})
    assert (tmp_path / "run.json.unreadable").read_text() == unreadable
    assert run_record.read(str(tmp_path)) == [{"run": 3}]
