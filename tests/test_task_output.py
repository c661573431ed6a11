"""One task's output: status lines to the launcher, the rest to its log file and (prefixed) the console."""

from __future__ import annotations

import io

import pytest

from launcher.launch.console import Console
from launcher.cluster.spec import TaskId
from launcher.launch.task_output import TaskOutput

WORKER = TaskId("worker", 0)
NOISE = "I0000 00:00:1795659342.436713    1994 port.cc:153] oneDNN custom operations are on."


@pytest.fixture
def make(tmp_path):
    """make(show_tf_logs=False) -> (output, console stream, statuses received, log file path)."""
    outputs = []

    def make(show_tf_logs: bool = False):
        stream, statuses = io.StringIO(), []
        output = TaskOutput(WORKER, str(tmp_path), Console(stream), lambda task, s: statuses.append((task, s)),
                            show_tf_logs)
        outputs.append(output)
        return output, stream, statuses, tmp_path / "logs" / "worker-0.log"

    yield make
    for output in outputs:
        output.close()


def test_status_lines_reach_on_status_only(make):
    output, stream, statuses, log = make()
    output.begin(1, ["py", "-m", "launcher.task"])
    output.write('@launcher-status {"event": "progress", "step": 40}\n')
    assert statuses == [(WORKER, {"event": "progress", "step": 40})]
    assert stream.getvalue() == ""
    assert "launcher-status" not in log.read_text()


def test_ordinary_lines_go_to_the_log_and_prefixed_to_the_console(make):
    output, stream, statuses, log = make()
    output.begin(1, ["py"])
    output.write("loss = 0.25\n")
    output.write("Traceback (most recent call last):\n")
    output.write("ValueError: bad\n")
    # The traceback stays in the log; the error itself reaches the console.
    assert stream.getvalue() == "[worker:0] loss = 0.25\n[worker:0] ValueError: bad\n"
    assert log.read_text().splitlines()[1:] == ["loss = 0.25", "Traceback (most recent call last):", "ValueError: bad"]
    assert statuses == []


@pytest.mark.parametrize("show_tf_logs", [False, True])
def test_noise_goes_to_the_log_and_to_the_console_only_when_asked(make, show_tf_logs):
    output, stream, _, log = make(show_tf_logs)
    output.begin(1, ["py"])
    output.write(NOISE + "\n")
    assert log.read_text().splitlines()[1:] == [NOISE]
    assert stream.getvalue() == (f"[worker:0] {NOISE}\n" if show_tf_logs else "")


def test_each_attempt_writes_a_header_and_a_restart_appends(make):
    first, _, _, log = make()
    first.begin(1, ["py", "-m", "launcher.task", "--job_name=worker"])
    first.write("first attempt\n")
    first.begin(2, ["py", "-m", "launcher.task", "--job_name=worker"])
    first.write("second attempt\n")
    first.close()
    again, _, _, _ = make()  # a new launcher run on the same model directory
    again.begin(1, ["py"])
    lines = log.read_text().splitlines()
    assert [line.split(" at ")[0] for line in lines if line.startswith("===")] == [
        "=== worker:0 attempt 1", "=== worker:0 attempt 2", "=== worker:0 attempt 1"]
    assert lines[0].endswith(": py -m launcher.task --job_name=worker")
    assert lines[1] == "first attempt" and lines[3] == "second attempt"


def test_tail_returns_the_last_lines_of_this_attempt_without_noise(make):
    output, _, _, _ = make()
    output.begin(1, ["py"])
    output.write("from the attempt before\n")
    output.begin(2, ["py"])
    for i in range(5):
        output.write(f"line {i}\n")
    output.write(NOISE + "\n")
    assert output.tail(3) == ["line 2", "line 3", "line 4"]
    assert output.tail() == [f"line {i}" for i in range(5)]
