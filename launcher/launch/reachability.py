"""Whether a task's port accepts connections, asked from where its peers would ask: its network namespace.

A local run's tasks may live in a network namespace of their own (see `isolation`), where their ports
exist and the launcher's namespace has none. The check then runs on a short-lived thread that joins the
task's namespace (setns applies to the calling thread only), so the launcher itself stays where it is.
A task on another machine is asked over the network, as its peers do.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Optional

from launcher.cluster.peers import accepts_connections

_CLONE_NEWNET = 0x40000000


def _namespace(pid: int) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def accepts(address: str, local_pid: Optional[int], timeout_secs: float = 2.0) -> Optional[bool]:
    """Whether `address` accepts connections, seen from the network namespace of `local_pid` (a process on
    this machine) or from here; None when that namespace cannot be entered."""
    if local_pid is None or _namespace(local_pid) in (None, _namespace(os.getpid())):
        return accepts_connections(address, timeout_secs)
    result: list[Optional[bool]] = [None]

    def check() -> None:
        try:
            fd = os.open(f"/proc/{local_pid}/ns/net", os.O_RDONLY)
        except OSError:
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                return  # not allowed (an unprivileged launcher): unknown, not "refused"
        finally:
            os.close(fd)
        result[0] = accepts_connections(address, timeout_secs)

    thread = threading.Thread(target=check, name="reachability", daemon=True)
    thread.start()
    thread.join(timeout_secs + 1)
    return result[0]
