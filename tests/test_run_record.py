"""run.json: a typed, versioned record, one entry per run, appended; an unreadable record kept aside rather
than lost, and read back as one line of error (exit 2), never a traceback."""

from __future__ import annotations

import json

import pytest

from launcher.launch import run_record
from launcher.launch.run_record import Attempt, Run, Task


def _run(n: int, outcome: str = "ok") -> Run:
    return Run(started=f"2026-01-0{n}T00:00:00+00:00", outcome=outcome, exit_code=0, train_steps=10,
               tasks=[Task("chief", 0, attempts=[Attempt(started=1.0, ended=2.0, exit_code=0)])])


def test_append_keeps_every_run_in_order_with_the_schema_version(tmp_path):
    run_record.append(str(tmp_path), _run(1))
    run_record.append(str(tmp_path), _run(2, "failed"))
    assert run_record.read(str(tmp_path)) == [_run(1), _run(2, "failed")]
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["version"] == run_record.SCHEMA_VERSION
    assert [r["outcome"] for r in data["runs"]] == ["ok", "failed"]
    assert data["runs"][0]["tasks"][0]["attempts"][0]["exit_code"] == 0
    assert "cause" not in data["runs"][0]["tasks"][0]["attempts"][0]  # optional keys stay out when unset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary file left behind


def test_no_record_reads_as_no_runs(tmp_path):
    assert run_record.read(str(tmp_path)) == []


@pytest.mark.parametrize("unreadable", ["{half a rec", '{"other": []}', "[1, 2]", '{"runs": []}'])
def test_unreadable_record_is_moved_aside_and_a_fresh_one_started(tmp_path, unreadable):
    (tmp_path / "run.json").write_text(unreadable)
    note = run_record.append(str(tmp_path), _run(3))
    assert note and "run.json.unreadable" in note
    assert (tmp_path / "run.json.unreadable").read_text() == unreadable
    assert run_record.read(str(tmp_path)) == [_run(3)]


DAMAGED = {
    "a string where a number belongs": ('{"version": 2, "runs": [{"started": "x", "outcome": "ok", '
                                        '"train_steps": "lots"}]}', "runs[0].train_steps: expected an integer"),
    "a bool where a number belongs": ('{"version": 2, "runs": [{"started": "x", "outcome": "ok", '
                                      '"exit_code": true}]}', "runs[0].exit_code: expected an integer"),
    "a list where an object belongs": ('{"version": 2, "runs": [{"started": "x", "outcome": "ok", '
                                       '"spec": []}]}', "runs[0].spec: expected an object"),
    "a task without index": ('{"version": 2, "runs": [{"started": "x", "outcome": "ok", '
                             '"tasks": [{"job": "chief"}]}]}', "runs[0].tasks[0].index: missing"),
    "truncated JSON": ('{"version": 2, "runs": [{"started": "x", "out', "not valid JSON"),
    "an older record": ('{"runs": [{"started": "x", "outcome": "ok"}]}', "schema version 1 (written by an older"),
    "a newer record": ('{"version": 3, "runs": []}', "schema version 3; this launcher reads version 2"),
    "not UTF-8": (b'{"version": 2, "runs": ["\xff"]}', "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_a_damaged_record_is_one_line_naming_where(tmp_path, name):
    text, expected = DAMAGED[name]
    (tmp_path / "run.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(run_record.RecordError) as raised:
        run_record.read(str(tmp_path))
    message = str(raised.value)
    assert expected in message and message.startswith(str(tmp_path / "run.json"))
    assert "\n" not in message


@pytest.mark.parametrize("name", ["a string where a number belongs", "a list where an object belongs",
                                  "a task without index", "truncated JSON", "an older record"])
def test_launcher_report_on_a_damaged_record_is_one_line_and_exit_2(runner, tmp_path, name):
    (tmp_path / "run.json").write_text(DAMAGED[name][0])
    report = runner.run("report", str(tmp_path), timeout=60)
    assert report.proc.returncode == 2, report.stderr
    assert report.stderr.strip().splitlines() == [f"error: {tmp_path / 'run.json'}: " +
                                                  report.stderr.split("run.json: ", 1)[1].strip()]
    assert DAMAGED[name][1] in report.stderr and "Traceback" not in report.stderr
    assert not (tmp_path / "report.html").exists()
