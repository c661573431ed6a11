"""What the warm process's loop and the warm base's loop share: a private Unix socket to listen on, the
turn that accepts clients and hands their messages on, answers that never fail the loop, and the exits of
the children they forked."""

from __future__ import annotations

import os
import socket
import stat
from typing import Callable, Iterator, Optional, TypeVar

from launcher.cluster import warm_protocol

T = TypeVar("T")


def private_directory(path: str) -> None:
    """Make `path` a directory that only this user reaches (0700), or check that it is one: a run's
    launcher makes it beside itself, but on a Slurm node the warm process makes the one its launcher named."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} is not a directory of this user's alone (0700)")


def listen(socket_path: str) -> socket.socket:
    """A listening socket at `socket_path`, reachable by this user only (0600)."""
    listener = socket.socket(socket.AF_UNIX, warm_protocol.SOCKET_TYPE)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    return listener


def dispatch(listener: socket.socket, clients: list[socket.socket], readable: list,
             on_message: Callable[[socket.socket], Optional[T]]) -> Optional[T]:
    """One turn of a loop over `select`'s `readable`: accept a new client into `clients`, and hand each client
    that has a message to `on_message`. Returns the first value it returns (only a forked child gets one)."""
    if listener in readable:
        connection, _ = listener.accept()
        clients.append(connection)
    for connection in [c for c in clients if c in readable]:
        value = on_message(connection)
        if value is not None:
            return value
    return None


def answer(connection: socket.socket, message: dict) -> None:
    try:
        warm_protocol.send(connection, message)
    except OSError:
        pass  # its client is gone: seen as end of file on the next read


def hung_up(connection: socket.socket) -> bool:
    """Whether a client has closed its end already: after its request, it gave up waiting for the answer
    (`warm_protocol.Silent`: this process was stopped meanwhile). Nobody would take such a fork's pid."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # still there, waiting
    except OSError:
        return True


def reaped() -> Iterator[tuple[int, int]]:
    """(pid, exit code in Popen's convention) of each child that has ended, without waiting."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)
