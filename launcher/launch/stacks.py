"""Every live task's stacks, written into its own log under a header: where each one waits.

The task program dumps all its Python threads (faulthandler) on `task_env.STACKS_SIGNAL`. A stopped
process cannot run its handler; for it, and for native frames of the others, `py-spy` is used where it is
installed (it reads a stopped process's memory without resuming it).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Iterable, Optional

from launcher.cluster import task_env
from launcher.cluster.user_frames import is_plumbing
from launcher.launch import proc_state
from launcher.launch.task_state import TaskState

DUMP_WAIT_SECS = 3.0
PY_SPY_TIMEOUT_SECS = 10.0
# Native frames mean reading TensorFlow's symbols, 15 s and more on a loaded machine: the verdict must not
# wait for them, so they are given this long and the Python-only dump is taken instead when they are late.
PY_SPY_NATIVE_SECS = 5.0
_FAULTHANDLER_FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')
_PY_SPY_FRAME = re.compile(r"^\s+(?P<func>\S+) \((?P<file>[^:()]+):(?P<line>\d+)\)")
@dataclasses.dataclass(frozen=True)
class Stacks:
    where: Optional[str]        # "logs/worker-0.log:812": the header above the dump in the task's log
    frame: Optional[str]        # the most telling frame: "hang.py:31 in blocked_input"
    lines: int                  # how many lines were dumped


def py_spy() -> Optional[str]:
    found = shutil.which("py-spy")
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return found or (beside if os.access(beside, os.X_OK) else None)


def _py_spy_dump(pid: int, stopped: bool, native: bool) -> list[str]:
    tool = py_spy()
    if tool is None:
        return []
    # --native suspends the process with ptrace, which a stopped one does not survive, and reads the symbols
    # of TensorFlow's libraries, which takes seconds: only for a running culprit.
    tries = ([(["--native"], PY_SPY_NATIVE_SECS)] if native and not stopped else []) + [
        (["--nonblocking"], PY_SPY_TIMEOUT_SECS)]
    for args, timeout in tries:
        try:
            out = subprocess.run([tool, "dump", "--pid", str(pid), *args], capture_output=True, text=True,
                                 timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0:
            return out.stdout.splitlines()
    return []


def telling_frame(lines: Iterable[str]) -> Optional[str]:
    """The most recent frame outside Python, installed packages and the launcher; else the most recent."""
    first = None
    for line in lines:
        m = _FAULTHANDLER_FRAME.match(line) or _PY_SPY_FRAME.match(line)
        if not m:
            continue
        frame = f"{os.path.basename(m['file'])}:{m['line']} in {m['func']}"
        first = first or frame
        if not is_plumbing(m["file"]):
            return frame
    return first


def gather(states: Iterable[TaskState], reason: str, native_for: Iterable = ()) -> dict[str, Stacks]:
    """Stacks of every running task, by task name, each in its log under a header naming `reason`; with
    native frames for the tasks in `native_for`."""
    native_for = set(native_for)
    live = [s for s in states if s.running and s.handle is not None]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    where, stopped = {}, {}
    pids = {s.task: s.local_pid for s in live}  # None for a process on another machine: no py-spy there
    for state in live:
        pid = state.handle.pid
        stopped[state.task] = proc_state.is_stopped(proc_state.state(pids[state.task]))
        where[state.task] = state.output.note([f"=== launcher: stacks of {state.task} (pid {pid}) at {stamp}: "
                                               f"{reason}"])
        state.output.start_capture()
        if not stopped[state.task] and state.ready:  # before READY its handler may not be installed yet
            state.handle.signal(task_env.STACKS_SIGNAL)
    # faulthandler writes at once; wait until the dumps have stopped growing.
    deadline, sizes = time.monotonic() + DUMP_WAIT_SECS, None
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = [len(s.output.captured()) for s in live]
        if now == sizes and all(n or stopped[s.task] or not s.ready for n, s in zip(now, live)):
            break
        sizes = now
    spied: dict = {}

    def spy(state: TaskState) -> None:
        pid = pids[state.task]
        spied[state.task] = _py_spy_dump(pid, stopped[state.task], state.task in native_for) if pid else []

    threads = [threading.Thread(target=spy, args=(s,), daemon=True) for s in live]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PY_SPY_NATIVE_SECS + PY_SPY_TIMEOUT_SECS + 1)
    result = {}
    for state in live:
        dumped = state.output.end_capture()
        extra = spied.get(state.task) or []
        if extra:
            state.output.note([f"=== launcher: py-spy dump of {state.task}"] + extra)
        elif stopped[state.task]:
            state.output.note(["=== launcher: the process is stopped: it cannot dump its stacks "
                               "(install py-spy to read them)"])
        result[state.task.name] = Stacks(where[state.task], telling_frame(dumped + extra), len(dumped) + len(extra))
    return result
