"""One process per test worker that has imported TensorFlow once and runs read-only snippets on request.

Tests read checkpoints, summaries and SavedModels back with TensorFlow, but the test process itself stays
free of it (as the launcher is). A fresh `python -c 'import tensorflow ...'` per read cost about 4 s of CPU,
25 times a run; this process pays the import once per worker. Snippets only read (checkpoints, event
files, a SavedModel's signature): code that tests a task's own process behaviour runs in a process of its
own (`conftest.run_with_tf_process`).

The process reads one JSON request per line on stdin ({"code", "args"}) and answers one JSON line on stdout
({"ok", "stdout", "error"}). It ends when its stdin closes (the test worker exiting, however it exits) or
when `close()` ends it at the session's end.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
from typing import Optional

_SERVE = r"""
import contextlib, io, json, sys, traceback
import tensorflow as tf
for line in sys.stdin:
    request = json.loads(line)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            sys.argv = ["-c", *request["args"]]
            exec(request["code"], {"json": json, "sys": sys, "tf": tf, "__name__": "__main__"})
        reply = {"ok": True, "stdout": out.getvalue()}
    except BaseException:
        reply = {"ok": False, "stdout": out.getvalue(), "error": traceback.format_exc()}
    sys.__stdout__.write(json.dumps(reply) + "\n")
    sys.__stdout__.flush()
"""

_lock = threading.Lock()
_proc: Optional[subprocess.Popen] = None


def run(code: str, *args: str, timeout: float = 120) -> str:
    """What `code` printed, run with `json`, `sys` (argv = ["-c", *args]) and `tf` at hand; a snippet that
    raises fails the calling test with its traceback."""
    global _proc
    with _lock:
        if _proc is None or _proc.poll() is not None:
            _proc = subprocess.Popen([sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        _proc.stdin.write(json.dumps({"code": code, "args": list(args)}) + "\n")
        _proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(_proc.stdout, selectors.EVENT_READ)
            line = _proc.stdout.readline() if sel.select(timeout) else ""
        if not line:
            close()
            raise AssertionError(f"the TensorFlow reader gave no answer within {timeout:g}s")
        reply = json.loads(line)
    if not reply["ok"]:
        raise AssertionError(f"TensorFlow snippet failed:\n{reply['error'][-3000:]}")
    return reply["stdout"]


def run_json(code: str, *args: str) -> object:
    """`run`, for code that prints one JSON line: that line, read."""
    return json.loads(run(code, *args).strip().splitlines()[-1])


def close() -> None:
    global _proc
    if _proc is not None:
        _proc.kill()
        _proc.wait()
        _proc = None
