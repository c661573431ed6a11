"""Processes found by a marker in their environment, and task processes known by the TF_CONFIG in theirs.

Shared by the benchmark and the tests (tests/conftest.py puts scripts/ on its path): both mark every process
they start with an environment variable, so that strays are found and killed, and both find a launcher's
task processes by name ("worker:0").
"""

from __future__ import annotations

import os
from typing import Optional

import psutil

from launcher.cluster import tf_config

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
    task's identity); None for a process that is not the task program, or that has gone."""
    try:
        if TASK_PROGRAM not in proc.cmdline():
            return None
        task = tf_config.task_of(proc.environ())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return task.name if task else None
