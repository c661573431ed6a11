"""Whether a task's port accepts connections, asked from where its peers would ask: a peer's network
namespace.

A local run's tasks may live in a network namespace of their own (see `isolation`), where their ports
exist and the launcher's namespace has none; tasks on a host bed each have one. The check then runs on a
short-lived thread that joins the vantage task's namespace (setns applies to the calling thread only), so
the launcher itself stays where it is. Without a local vantage point, it is asked from here.

The answer tells apart a refusal (nothing listens: the server is gone) from a timeout (the host does not
answer at all: cut off, or down).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import threading
from typing import Iterable, Optional

import socket

_CLONE_NEWNET = 0x40000000
ACCEPTS, REFUSED, UNREACHABLE = "accepts", "refused", "unreachable"


def _connect(address: str, timeout_secs: float) -> str:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_secs):
            return ACCEPTS
    except (socket.timeout, TimeoutError):
        return UNREACHABLE
    except OSError as e:
        import errno

        return UNREACHABLE if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT) else REFUSED
    except ValueError:
        return REFUSED


def _namespace(pid: int) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def check(address: str, vantage_pid: Optional[int], timeout_secs: float = 2.0) -> Optional[str]:
    """ACCEPTS, REFUSED or UNREACHABLE: `address` seen from the network namespace of `vantage_pid` (a process
    on this machine) or from here; None when that namespace cannot be entered."""
    local_pid = vantage_pid
    if local_pid is None or _namespace(local_pid) in (None, _namespace(os.getpid())):
        return _connect(address, timeout_secs)
    result: list[Optional[str]] = [None]

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
        result[0] = _connect(address, timeout_secs)

    thread = threading.Thread(target=check, name="reachability", daemon=True)
    thread.start()
    thread.join(timeout_secs + 1)
    return result[0]


def check_from_peers(address: str, own_pid: Optional[int], peer_pids: Iterable[Optional[int]],
                     timeout_secs: float = 2.0) -> Optional[str]:
    """`address` (the server of the process `own_pid`) as its peers see it: one check from each network
    namespace the peers live in, besides its own, all at once.

    A peer whose own host is cut off reaches nobody, so one vantage point would blame the wrong side: the
    server is UNREACHABLE only when no peer gets through. Any peer that connects means it is up (ACCEPTS);
    a refusal means nothing listens, and so does one from its own namespace: at the end of a run a task
    may have just exited while the only peer left to ask is the cut-off one. With no peer elsewhere (one host, or tasks isolated together), it is
    asked from its own namespace, where its port exists, or from here.
    """
    own = _namespace(own_pid) if own_pid is not None else None
    near = check(address, own_pid, timeout_secs)
    if near == REFUSED:
        return REFUSED  # nothing listens, even next to it: the server is gone, whatever peers can reach
    vantages: dict[str, int] = {}
    for pid in peer_pids:
        namespace = _namespace(pid) if pid is not None else None
        if namespace is not None and namespace != own:
            vantages.setdefault(namespace, pid)
    if not vantages:
        return near
    with concurrent.futures.ThreadPoolExecutor(len(vantages), thread_name_prefix="reachability") as pool:
        answers = set(pool.map(lambda pid: check(address, pid, timeout_secs), vantages.values()))
    return next((a for a in (ACCEPTS, REFUSED, UNREACHABLE) if a in answers), None)
