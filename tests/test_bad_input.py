"""Bad input: one line naming what is wrong and where, exit 2, no traceback, nothing left running, and
nothing started or changed (what only a task can check, nothing trained and no checkpoint touched)."""

import pathlib
import socket

import pytest

from conftest import last_run

SPECS = {
    "malformed.json": '{"cluster": {"chief": ["localhost:0"]',
    "list.json": '["localhost:0"]',
    "unknown_job.json": '{"chief": ["localhost:0"], "trainer": ["localhost:0"]}',
    "no_chief.json": '{"worker": ["localhost:0"]}',
    "two_chiefs.json": '{"chief": ["localhost:0", "localhost:0"]}',
    "bad_address.json": '{"chief": ["localhost"]}',
    "port_range.json": '{"chief": ["localhost:70000"]}',
    "twice.json": '{"chief": ["localhost:23456"], "worker": ["localhost:23456"]}',
    "remote.json": '{"chief": ["10.1.2.3:0"]}',
    "bad_flag.json": '{"cluster": {"chief": ["localhost:0"]}, "flags": {"worker": ["learning_rate=1"]}}',
    "with_evaluator.json": '{"chief": ["localhost:0"], "evaluator": ["localhost:0"]}',
    "unknown_flag.json": '{"cluster": {"chief": ["localhost:0"]}, "flags": {"chief": ["--no_such_flag=1"]}}',
}

CASES = [
    # (spec, extra args, what the one line must say)
    ("malformed.json", [], ["malformed.json", "not valid JSON", "line 1"]),
    ("list.json", [], ["list.json", "must be a JSON object", "list"]),
    ("unknown_job.json", [], ["cluster.trainer", "unknown job name 'trainer'"]),
    ("no_chief.json", [], ["cluster.chief", "exactly one chief"]),
    ("two_chiefs.json", [], ["cluster.chief", "it has 2"]),
    ("bad_address.json", [], ["cluster.chief[0]", "'localhost' is not host:port"]),
    ("port_range.json", [], ["cluster.chief[0]", "70000", "out of range"]),
    ("twice.json", [], ["cluster.worker[0]", "localhost:23456", "used twice", "cluster.chief[0]"]),
    ("remote.json", [], ["cluster.chief[0]", "'10.1.2.3' is not loopback"]),
    ("no_such_spec.json", [], ["no_such_spec.json", "no such spec file", "local2"]),
    ("local9", [], ["local9", "no such spec file"]),
    ("bad_flag.json", [], ["flags.worker[0]", "'learning_rate=1' is not a flag"]),
    ("unknown_flag.json", [], ["flags.chief[0]", "--no_such_flag=1"]),
    ("local2", ["--worker_flags=--learning_rate=abc"], ["--worker_flags[0]", "learning_rate", "abc"]),
    ("local1", ["--worker_flags=--learning_rate=0.1"], ["local1.json", "--worker_flags given", "no worker task"]),
    ("local2", ["--ps_flags=--model_dir=/elsewhere"], ["--ps_flags[0]", "set by the launcher"]),
    ("with_evaluator.json", ["--evaluator_flags=--keep_best=accuracy:best"], ["--evaluator_flags[0]", "METRIC:max"]),
    ("local1", ["--model", "models.no_such_module"], ["models.no_such_module", "cannot be imported"]),
    ("local1", ["--model", "models.broken_import"], ["models.broken_import", "a_module_that_does_not_exist"]),
    ("local1", ["--model", "models.no_build"], ["models.no_build", "has no function build"]),
    ("local1", ["--train_steps", "0"], ["--train_steps", "0", "not a positive integer"]),
    ("local1", ["--train_steps", "abc"], ["--train_steps", "'abc'", "not a positive integer"]),
    ("local1", ["--train_steps", "1.5"], ["--train_steps", "1.5", "not a positive integer"]),
    ("local1", ["--model_dir", "/proc/launcher-test/model"], ["/proc", "not writable"]),
    ("local1", ["--restart_policy", "sometimes"], ["--restart_policy", "'sometimes'"]),
    ("local1", ["--max_restarts", "-1"], ["--max_restarts", "-1", "not a non-negative integer"]),
    ("local1", ["--grace_secs", "soon"], ["--grace_secs", "'soon'", "not a non-negative number"]),
]


def _assert_one_clear_line(launch, words):
    assert launch.proc.returncode == 2, (launch.proc.returncode, launch.stderr)
    assert "Traceback" not in launch.stderr + launch.stdout
    lines = [line for line in launch.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), launch.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


@pytest.mark.parametrize("spec, extra, words", CASES, ids=[f"{c[0]}{'-' + c[1][-1] if c[1] else ''}" for c in CASES])
def test_bad_input_is_refused_before_anything_starts(runner, tmp_path, spec, extra, words):
    if spec in SPECS:
        (tmp_path / spec).write_text(SPECS[spec])
    if "--model_dir" in extra:  # the case is the model directory itself: that is the one to check
        at = extra.index("--model_dir")
        model_dir = pathlib.Path(extra[at + 1])
        extra = extra[:at] + extra[at + 2:]
    else:
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "model.ckpt-7.index").write_text("a checkpoint the user cares about")
    before = _contents(model_dir)
    launch = runner.run("run", "--spec", spec, "--model_dir", str(model_dir), *extra, timeout=120)
    _assert_one_clear_line(launch, words)
    if (spec, extra) in TASK_CHECKED:
        # Checked by the tasks, which were started (their logs and the run's record are written), gated:
        # none trained, and the user's checkpoints are as they were.
        assert _checkpoints(model_dir) == _checkpoints_of(before)
        assert last_run(model_dir)["exit_code"] == 2 and last_run(model_dir)["global_step_end"] == 7
        assert not [t for t in last_run(model_dir)["tasks"] if t["steps"]]
    else:
        assert _contents(model_dir) == before


# Flags that only the model module defines, and the model module itself: the tasks check them, since the
# launcher never imports the model (or TensorFlow).
TASK_CHECKED = [("unknown_flag.json", []), ("local2", ["--worker_flags=--learning_rate=abc"]),
                ("with_evaluator.json", ["--evaluator_flags=--keep_best=accuracy:best"]),
                *(("local1", ["--model", m]) for m in ("models.no_such_module", "models.broken_import",
                                                     "models.no_build"))]
LAUNCHER_FILES = ("logs", "run.json", ".launcher.lock")


def _checkpoints(model_dir):
    return _checkpoints_of(_contents(model_dir))


def _checkpoints_of(contents):
    return [(name, mtime) for name, mtime in contents if name not in LAUNCHER_FILES]


def _contents(model_dir):
    """What is in the model directory, with modification times; None if it does not exist."""
    if not model_dir.exists():
        return None
    return sorted((p.name, p.stat().st_mtime_ns) for p in model_dir.iterdir())


def test_port_taken_by_another_process(runner, tmp_path):
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        sock.listen()
        port = sock.getsockname()[1]
        (tmp_path / "taken.json").write_text(f'{{"chief": ["localhost:{port}"]}}')
        launch = runner.run("run", "--spec", "taken.json", "--model_dir", str(tmp_path / "model"))
    _assert_one_clear_line(launch, ["cluster.chief[0]", f"port {port}", "already in use"])
    assert not (tmp_path / "model").exists()
