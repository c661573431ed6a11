"""Processes found by a marker in their environment, and task processes known by the TF_CONFIG in theirs.

Shared by the benchmark and the tests (tests/conftest.py puts scripts/ on its path): both mark every process
they start with an environment variable, so that strays are found and killed, and both find a launcher's
task processes by name ("worker:0").
"""

from __future__ import annotations

import os
import re
from typing import Optional

import psutil

from launcher.cluster import tf_config, warm_protocol

TASK_PROGRAM = "launcher.task"  # `python -m launcher.task`: what every backend runs for a task
_TASK_NAME = re.compile(r"^(chief|worker|ps|evaluator):\d+$")


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
    task's identity); None for a process that is not the task program, or that has gone.

    A task forked by a warm process shows its own command line and environment where it may (as root);
    elsewhere it shows its warm process's and carries its name as its process name (see task.warm.identity).
    """
    try:
        cmdline = proc.cmdline()
        if TASK_PROGRAM in cmdline:
            task = tf_config.task_of(proc.environ())
            return task.name if task else None
        if warm_protocol.MODULE in cmdline and _TASK_NAME.match(proc.name()):
            return proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        pass
    return None
