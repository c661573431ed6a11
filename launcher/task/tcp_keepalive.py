"""The kernel's TCP keepalive on every connection of a task, since TensorFlow's gRPC channels have none.

TensorFlow makes its channels without gRPC keepalive pings, and its RPCOptions have no setting for them. A
connection whose other end is gone without a word reaching this side (a peer's host cut off while the peer
closed it) then stays ESTABLISHED here for good, with nothing to send and nothing in flight: every RPC gRPC
puts on it waits for ever. Seen on the host bed: after a host's 20 s cut, a worker's new session waited in
CreateSession on such a connection to a ps, for as long as anyone looked, and so did the close of its old
session.

The kernel can probe such a connection by itself: with SO_KEEPALIVE an idle connection is probed after
IDLE_SECS, the peer's host answers a probe for a socket it no longer has with a reset, and gRPC, seeing the
connection fail, fails its RPCs as Unavailable (which sessions recover from) and connects afresh. A peer that
does not answer at all is given up after USER_TIMEOUT_MS, also when data waits for an acknowledgement: a
host cut off for less than that is survived by every connection.

gRPC owns the sockets and gives no hook at their creation, so a thread looks at this process's descriptors
every SCAN_SECS and sets the options on each new TCP socket (through a duplicate of its descriptor: the
options belong to the socket, which both descriptors share).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Optional

IDLE_SECS = 10
INTERVAL_SECS = 5
COUNT = 3
USER_TIMEOUT_MS = 30_000
SCAN_SECS = 1.0

_FD_DIR = "/proc/self/fd"


def enable(sock: socket.socket) -> None:
    """Keepalive and a user timeout on `sock` (a TCP socket)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, IDLE_SECS)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, INTERVAL_SECS)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, COUNT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)


def scan(seen: set[str]) -> int:
    """Enable keepalive on this process's TCP sockets not in `seen` (socket inodes); returns how many."""
    done = 0
    try:
        fds = os.listdir(_FD_DIR)
    except OSError:
        return 0
    for name in fds:
        try:
            target = os.readlink(os.path.join(_FD_DIR, name))
        except OSError:
            continue  # closed meanwhile
        if not target.startswith("socket:") or target in seen:
            continue
        seen.add(target)
        try:
            dup = os.dup(int(name))
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        with sock:  # closes the duplicate only
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
                try:
                    enable(sock)
                    done += 1
                except OSError:
                    pass  # a socket that is closing, or a kernel without one of the options
    return done


def start(stop: Optional[threading.Event] = None) -> threading.Thread:
    """Keep enabling keepalive on new TCP sockets of this process, in a daemon thread, until `stop` is set."""
    stop = stop or threading.Event()

    def watch() -> None:
        seen: set[str] = set()
        while True:
            scan(seen)
            if stop.wait(SCAN_SECS):
                return

    thread = threading.Thread(target=watch, name="tcp-keepalive", daemon=True)
    thread.start()
    return thread
