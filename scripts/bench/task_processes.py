"""Processes found by a marker in their environment, and task processes known by the TF_CONFIG in theirs.

Shared by the benchmark and the tests (tests/conftest.py puts scripts/ on its path): both mark every process
they start with an environment variable, so that strays are found and killed, and both find a launcher's
task processes by name ("worker:0").
"""

from __future__ import annotations

import json
import os
from typing import Optional

import psutil

TASK_PROGRAM = "launcher.task"  # `python -m launcher.task`: what every backend runs for a task


def marked(variable: str, value: str) -> list[psutil.Process]:
    """Every process but this one whose environment has `variable` set to `value`."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(variable) == value:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def task_name(proc: psutil.Process) -> Optional[str]:
    """"worker:0" for a task process, from the TF_CONFIG in its environment (where every backend puts the
    task's identity), or else from `--job_name=`/`--task_index=` on its command line; None for a process
    that is not the task program, or that has gone."""
    try:
        cmdline = proc.cmdline()
        value = proc.environ().get("TF_CONFIG") if TASK_PROGRAM in cmdline else None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if TASK_PROGRAM not in cmdline:
        return None
    if value:
        try:
            task = json.loads(value)["task"]
            return f"{task['type']}:{int(task.get('index', 0))}"
        except (ValueError, KeyError, TypeError):
            pass
    flags = dict(arg[2:].split("=", 1) for arg in cmdline if arg.startswith("--") and "=" in arg)
    if "job_name" in flags:
        return f"{flags['job_name']}:{flags.get('task_index', 0)}"
    return None
