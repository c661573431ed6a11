"""Status lines are validated where they are parsed: each event's fields by type, the rest dropped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from launcher.cluster import status

P = status.PREFIX


@pytest.mark.parametrize("line, parsed", [
    (P + '{"event": "progress", "step": 5, "local_steps": 3}', {"event": "progress", "step": 5, "local_steps": 3}),
    (P + '{"event": "progress", "step": 5, "local_steps": "lots"}', {"event": "progress", "step": 5}),
    (P + '{"event": "session", "step": "<img src=x onerror=alert(2)>"}', {"event": "session"}),
    (P + '{"event": "session", "step": true}', {"event": "session"}),  # a bool is not an int
    (P + '{"event": "session", "step": 5.0}', {"event": "session"}),
    (P + '{"event": "session", "step": -1}', {"event": "session"}),
    (P + '{"event": "session", "step": 99999999999999999999999}', {"event": "session"}),
    (P + '{"event": "done", "step": 7, "html": "<b>"}', {"event": "done", "step": 7}),  # not a field of "done"
    (P + '{"event": "eval", "step": 7, "metrics": {"loss": 0.5, "n": 3}}',
     {"event": "eval", "step": 7, "metrics": {"loss": 0.5, "n": 3}}),
    (P + '{"event": "eval", "step": 7, "metrics": {"loss": "low"}}', {"event": "eval", "step": 7}),
    (P + '{"event": "eval", "metrics": {"ok": false}}', {"event": "eval"}),
    (P + '{"event": "early_stop", "step": 7, "reason": ["no"]}', {"event": "early_stop", "step": 7}),
    (P + '{"event": "unheard of", "step": 7}', {"event": "unheard of"}),
    (P + '{"event": 7}', None),
    (P + '["event"]', None),
    (P + "{not json", None),
    (P + '{"event": "done"}' + " " * status.MAX_LINE, None),
    ("ordinary output", None),
])
def test_each_field_is_kept_only_with_its_type(line, parsed):
    assert status.parse(line) == parsed


def test_emit_to_a_closed_pipe_returns_false_instead_of_raising():
    read, write = os.pipe()
    os.close(read)  # the launcher is gone
    code = ("import sys; from launcher.cluster import status; "
            "ok = status.emit(status.DONE, step=1); sys.stderr.write(repr(ok))")
    done = subprocess.run([sys.executable, "-c", code], stdout=write, stderr=subprocess.PIPE, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    os.close(write)
    assert done.stderr.startswith("False"), done.stderr
