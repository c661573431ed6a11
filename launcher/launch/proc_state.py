"""What the kernel says of a local task process: its state letter and its cgroup (from /proc).

A process stopped by SIGSTOP (state T) keeps its sockets: its port still accepts connections (the kernel
completes the handshake), so only its state tells that nobody will answer.
"""

from __future__ import annotations

import os
from typing import Optional

_STATES = {"R": "running", "S": "sleeping", "D": "in uninterruptible I/O (disk or network filesystem)",
           "T": "stopped (SIGSTOP)", "t": "stopped by a debugger", "Z": "a zombie (exited)"}


def local_pid(pid: Optional[int], argv: list[str]) -> Optional[int]:
    """`pid` when it is this task's process on this machine (its command line is `argv`), else None.

    A Ray backend's pid may be a process of another node: /proc here would describe a stranger.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")[:-1]
    except OSError:
        return None
    return pid if [a.decode(errors="replace") for a in cmdline] == list(argv) else None


def stat_fields(pid: Optional[int]) -> Optional[list[str]]:
    """The fields of /proc/PID/stat after the command name, from the state letter on (proc(5)'s third field
    is [0]), or None where /proc does not know `pid`."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces


def state(pid: Optional[int]) -> Optional[str]:
    """The state letter of `pid` ("R", "S", "D", "T", ...), or None where /proc does not know it."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def parent(pid: int) -> Optional[int]:
    """The parent pid of `pid`, or None where /proc does not know it."""
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def zombie_exit_code(pid: int) -> Optional[int]:
    """The exit code (Popen's convention) of `pid` if it has ended and its parent has not reaped it yet:
    the kernel keeps it in /proc/PID/stat's last field (proc(5): exit_code) until then."""
    fields = stat_fields(pid)
    if not fields or fields[0] != "Z" or len(fields) < 50:  # running (another process's pid now), or old kernel
        return None
    return os.waitstatus_to_exitcode(int(fields[-1]))


def describe(letter: Optional[str]) -> str:
    return _STATES.get(letter or "", f"in state {letter}" if letter else "in an unknown state")


def is_stopped(letter: Optional[str]) -> bool:
    return letter in ("T", "t")


def cgroups(pid: Optional[int]) -> list[tuple[str, str]]:
    """(controllers, path relative to the hierarchy's root) for each of `pid`'s cgroups, from
    /proc/PID/cgroup; controllers is "" for the v2 hierarchy. Empty when the process is gone."""
    if pid is None:
        return []
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [(controllers, rel.lstrip("/")) for _, controllers, rel in (line.split(":", 2) for line in lines)]


def cgroup_v2(pid: Optional[int]) -> Optional[str]:
    """The cgroup v2 directory of `pid` under /sys/fs/cgroup (or its unified mount), or None."""
    for controllers, rel in cgroups(pid):
        if controllers == "":
            for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                path = os.path.join(root, rel)
                if os.path.exists(os.path.join(path, "cgroup.procs")):
                    return path
    return None
