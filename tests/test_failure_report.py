"""A task's own account of its failure (launcher/task/failure_report.py): what it says, checked by type on
the launcher's side, and that saying it never becomes a failure of its own."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from launcher.cluster import status
from launcher.launch import root_cause

pytestmark = pytest.mark.unit


def _run(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          **kwargs)


def test_an_oserror_is_reported_with_its_errno_path_and_the_users_frame(tmp_path):
    user = tmp_path / "my_model.py"
    user.write_text("def build():\n    open('/nonexistent/dir/x')\n")
    done = _run("import sys; sys.path.insert(0, %r)\n"
                "from launcher.task import failure_report\nimport my_model\n"
                "try:\n    my_model.build()\nexcept OSError as e:\n    failure_report.report(e)\n" % str(tmp_path))
    assert done.returncode == 0, done.stderr
    fields = status.parse(done.stdout.strip())
    assert fields["event"] == status.FAILURE
    failure = status.check_failure(fields["failure"])
    assert failure == fields["failure"]  # every field of the right type
    assert failure["type"] == "FileNotFoundError" and failure["errno"] == 2
    assert failure["filename"] == "/nonexistent/dir/x"
    assert failure["frame"] == f"{user}:2 in build: open('/nonexistent/dir/x')"
    assert root_cause.from_report(failure).startswith("FileNotFoundError: [Errno 2] No such file or directory")


def test_a_closed_stdout_does_not_change_the_exit_code():
    # The reader of stdout is gone (the launcher died): the report, and then the exit's flush, meet a
    # closed pipe. Buffered or not (tasks run with PYTHONUNBUFFERED=1), the exit code stays the task's.
    code = ("import os, sys\nfrom launcher.task import failure_report\n"
            "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
            "failure_report.report(RuntimeError('boom'))\nsys.exit(1)\n")
    for unbuffered in ("1", ""):
        done = _run(code, env={**os.environ, "PYTHONUNBUFFERED": unbuffered})
        assert done.returncode == 1, done.stderr
        assert "Exception ignored" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


def test_the_launcher_takes_the_report_and_the_system_only_for_what_a_task_cannot_say():
    reported = {"type": "ResourceExhaustedError", "message": "/m/model.ckpt-2_temp/part-0; No space left on device",
                "tf_code": "RESOURCE_EXHAUSTED"}
    assert root_cause.find([], 1, reported=reported).startswith("no space left on device writing /m/model.ckpt")
    log = ["Traceback (most recent call last):", "ValueError: from the log"]
    assert root_cause.find(log, 1, reported={"type": "RuntimeError", "message": "from the task"}) == \
        "RuntimeError: from the task"
    assert root_cause.find(["Traceback (most recent call last):", "ValueError: from the log"], 1) == \
        "ValueError: from the log"
    assert json.dumps(root_cause.from_report({"type": "OSError", "message": "", "errno": 98}, "h:1")) == \
        json.dumps("its port h:1 is taken by another process")
