"""The root cause of a task's failure, when its log or the system names it: one line a person can act on.

"exited 1 (training failed)" says nothing. The task's own account comes first: the task program reports
its exception as a status line before it exits (`status.FAILURE`, see launcher/task/failure_report.py).
The system and the log are read only for what a task cannot say (the OOM killer, a SIGKILL, a crash
before its report, a task program that does not report). Named here:
- no space left on a device (and which path was being written);
- the kernel's OOM killer (cgroup v2 `memory.events`, cgroup v1 `memory.oom_control`, or the kernel log);
- a port taken by another process (the task's server could not bind);
- a Python exception, with the last frame in the user's own file (not Python's, TensorFlow's or ours).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
from typing import Iterable, Optional

from launcher.launch import proc_state
from launcher.cluster.user_frames import is_plumbing

_NO_SPACE = re.compile(r"No space left on device")
_PATH = re.compile(r"(/[^\s:;'\",]+)")
_PORT_TAKEN = re.compile(r"Address already in use|Could not start gRPC server|Failed to add port")
_FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')
_EXCEPTION = re.compile(r"^(?P<type>(\w+\.)*\w+(Error|Exception|Exit|Interrupt|Warning)?): (?P<msg>.*)$")


@dataclasses.dataclass
class MemoryWatch:
    """Where a task's OOM kills are counted, and how many there were when it was last seen alive."""

    events: Optional[str] = None   # a cgroup's memory.events or memory.oom_control
    baseline: int = 0

    @classmethod
    def of(cls, pid: Optional[int]) -> MemoryWatch:
        path = _memory_events_file(pid)
        return cls(path, _oom_kills(path)) if path else cls()

    def killed(self) -> bool:
        return self.events is not None and _oom_kills(self.events) > self.baseline


def watch_memory(states: Iterable) -> None:
    """Note where each running task's OOM kills are counted (a task may be moved into a cgroup), and its
    local pid (once it has ended, the kernel log names it by that pid). `states`: the TaskStates."""
    for state in states:
        pid = state.local_pid if state.running else None
        if pid is not None:
            attempt = state.attempts[-1]
            attempt.local_pid = pid
            watch = MemoryWatch.of(pid)
            if watch.events and (attempt.memory is None or attempt.memory.events != watch.events):
                attempt.memory = watch


def _memory_events_file(pid: Optional[int]) -> Optional[str]:
    for controllers, rel in proc_state.cgroups(pid):
        if controllers == "":
            candidates = [os.path.join(root, rel, "memory.events")
                          for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")]
        elif "memory" in controllers.split(","):
            candidates = [os.path.join("/sys/fs/cgroup/memory", rel, "memory.oom_control")]
        else:
            continue
        for path in candidates:
            if os.path.exists(path) and _oom_kills(path) is not None and rel:
                return path
    return None


def _oom_kills(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return 0


def _kernel_log_oom(pid: Optional[int]) -> bool:
    """Whether the kernel log (where readable) says it killed `pid` for memory."""
    if pid is None:
        return False
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        while True:
            try:
                record = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                return False
            except OSError:
                continue  # a record overwritten while reading
            if re.search(rf"Killed process {pid}\b|oom-kill:.*pid={pid}\b", record):
                return True
    finally:
        os.close(fd)


def find(lines: list[str], returncode: int, pid: Optional[int] = None,
         memory: Optional[MemoryWatch] = None, address: Optional[str] = None,
         reported: Optional[dict] = None) -> Optional[str]:
    """The root cause of a process that ended with `returncode`: from the system when it was killed, else
    from its own report (`reported`, the checked fields of its FAILURE status), else from its log `lines`."""
    if returncode == -9 or returncode == 137:
        if (memory is not None and memory.killed()) or _kernel_log_oom(pid):
            where = f" (cgroup {os.path.dirname(memory.events)})" if memory and memory.events else ""
            return f"killed by the kernel's OOM killer: out of memory{where}"
    if reported and reported.get("type"):
        return from_report(reported, address)
    for line in lines:
        if _NO_SPACE.search(line):
            return _no_space(line, None)
    if any(_PORT_TAKEN.search(line) for line in lines):
        return _port_taken(address)
    return _exception(lines)


def from_report(reported: dict, address: Optional[str] = None) -> str:
    """A task's own account of its failure (see `status.FAILURE_FIELDS`) as a root cause."""
    message = reported.get("message", "")
    if reported.get("errno") == errno.ENOSPC or _NO_SPACE.search(message):
        return _no_space(message, reported.get("filename"))
    if reported.get("errno") == errno.EADDRINUSE or _PORT_TAKEN.search(message):
        return _port_taken(address)
    first = message.strip().splitlines()[0] if message.strip() else ""
    frame = reported.get("frame")
    return f"{reported['type']}: {first}" + (f"\n  at {frame}" if frame else "")


def _no_space(text: str, path: Optional[str]) -> str:
    if path is None:
        paths = [p for p in _PATH.findall(text) if not p.startswith("/job:")]
        path = paths[-1] if paths else None
    return "no space left on device" + (f" writing {path}{_free(path)}" if path else "")


def _port_taken(address: Optional[str]) -> str:
    return f"its port {address} is taken by another process" if address else \
        "its server's port is taken by another process"


def _free(path: str) -> str:
    directory = os.path.dirname(path)
    while directory and not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        usage = shutil.disk_usage(directory)
    except OSError:
        return ""
    return f" ({usage.free // 1024} KiB free of {usage.total // 1024} KiB on that filesystem now)"


def _exception(lines: list[str]) -> Optional[str]:
    """The last Python traceback's exception and the innermost frame in the user's own files."""
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")),
                default=None)
    if start is None:
        return None
    user_frame, error = None, None
    for i in range(start + 1, len(lines)):
        m = _FRAME.match(lines[i])
        if m:
            if not is_plumbing(m["file"]):
                code = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith("    ") else ""
                user_frame = f"{m['file']}:{m['line']} in {m['func']}" + (f": {code}" if code else "")
            continue
        if m is None and not lines[i].startswith(" ") and _EXCEPTION.match(lines[i]):
            error = lines[i]
            break
    if error is None:
        return None
    error = re.sub(r"^(\w+\.)+(\w+:)", r"\2", error)  # tensorflow.python.framework.errors_impl.X: -> X:
    return error + (f"\n  at {user_frame}" if user_frame else "")
