"""Stop signals in a real process (a plain Python one: the handler is the same in every task and launcher).

A task that stops now exits at once with the contract's code, raising nothing into the code it was running
(raised inside TensorFlow, that exception broke the exit: see `stop_signals.exit_at_once`), and what it had
printed is flushed. A launcher's first signal before it has tasks raises StopNow, so that its cleanup runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

_PROGRAM = """
import os, signal, sys
from launcher.cluster.stop_signals import StopRequest
stop = StopRequest(armed=sys.argv[1] == "armed", exit_when_hurried=sys.argv[2] == "task").install()
print("before", end="")  # not flushed: the exit must flush it
try:
    for signum in map(int, sys.argv[3:]):
        os.kill(os.getpid(), signum)
    print(" requested", stop.requested, end="")
except BaseException as e:
    print(" raised", type(e).__name__, end="")
    raise
finally:
    print(" cleanup", end="")
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROGRAM, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("armed, signals", [("unarmed", [signal.SIGTERM]),
                                            ("armed", [signal.SIGTERM, signal.SIGINT])])
def test_a_task_that_stops_now_exits_at_once_raising_nothing(armed, signals):
    done = _run(armed, "task", *map(str, signals))
    assert (done.returncode, done.stdout, done.stderr) == (128 + signals[0], "before", "")


def test_a_tasks_first_signal_while_armed_is_a_request():
    done = _run("armed", "task", str(signal.SIGTERM))
    assert (done.returncode, done.stdout) == (0, "before requested True cleanup")


def test_a_launchers_first_signal_before_it_has_tasks_raises_for_its_cleanup():
    done = _run("unarmed", "launcher", str(signal.SIGTERM))
    assert (done.returncode, done.stdout) == (143, "before raised StopNow cleanup")
