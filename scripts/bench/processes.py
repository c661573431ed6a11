"""Child processes that can always be cleaned up.

Every child starts in a session of its own (so it and what it spawns die as one process group) and
carries a marker in its environment, so that whatever escaped its group (a task that outlived its
launcher, a Ray instance's processes) is still found and killed at the end of a trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any, Iterable, Optional, Sequence

import psutil

from bench.task_processes import marked
from launcher.cluster.spec import JOBS

MARKER = "LAUNCHER_BENCHMARK_RUN"  # in every child's environment, to find strays at clean-up
RUN_ID = uuid.uuid4().hex
LAUNCHER_STOP_SECS = 45.0  # after SIGTERM, the launcher's own grace (30 s) plus a margin


# The environment the benchmark was started with. Its own imports change os.environ (reading event files
# imports TensorFlow, whose imports set KMP_DUPLICATE_LIB_OK): every child gets the same one all the same,
# which a warm base started before the first trial requires of the runs it serves.
_STARTED_WITH = dict(os.environ)


def child_env() -> dict[str, str]:
    """The benchmark's environment at its start, with the marker, unbuffered output and TensorFlow's log
    level."""
    env = dict(_STARTED_WITH)
    env[MARKER] = RUN_ID
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # as the launcher sets it for its tasks
    return env


def start(argv: Sequence[str], env: Optional[dict[str, str]] = None, **popen_args: Any) -> subprocess.Popen:
    """A child in a session of its own, so that it and what it spawns can be killed as a group."""
    return subprocess.Popen(list(argv), env=env or child_env(), stdin=subprocess.DEVNULL, start_new_session=True,
                            **popen_args)


def _marked_processes() -> list[psutil.Process]:
    return marked(MARKER, RUN_ID)


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:100] or proc.name()}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return str(proc.pid)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def wait_for_strays(timeout_secs: float) -> list[str]:
    """Waits up to `timeout_secs` for every process of this benchmark to end by itself; those left."""
    deadline = time.monotonic() + timeout_secs
    while True:
        left = [p for p in _marked_processes() if _alive(p)]
        if not left or time.monotonic() >= deadline:
            return [_describe(p) for p in left]
        time.sleep(0.2)


def kill_all(procs: Iterable[subprocess.Popen]) -> None:
    """SIGKILL the process groups of `procs`, then anything else this benchmark started (tasks that
    outlived their launcher, in sessions of their own; a Ray instance's processes)."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait()
    for stray in _marked_processes():
        try:
            if os.getpgid(stray.pid) == stray.pid:
                os.killpg(stray.pid, signal.SIGKILL)
            else:
                stray.kill()
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    left = wait_for_strays(5.0)
    if left:
        print(f"WARNING: still running after SIGKILL: {'; '.join(left)}", file=sys.stderr, flush=True)


def stop_launcher(proc: subprocess.Popen) -> None:
    """A launcher still running (timeout, Ctrl-C): SIGTERM, so that it stops its tasks, then SIGKILL all."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(LAUNCHER_STOP_SECS)
        except subprocess.TimeoutExpired:
            pass
    kill_all([proc])


def is_task(key: str, job: Optional[str] = None) -> bool:
    """Whether `key` ("chief:0", "launcher", "pid:N") names a task: of `job`, or of any job when None."""
    return key.split(":")[0] in ((job,) if job else JOBS)
