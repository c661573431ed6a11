"""How a launcher asks a warm process (`python -m launcher.task.warm`) for a task: shared by both sides.

A warm process has imported TensorFlow, the task program and the model module once; it forks each task on
request, so that no task (and no restart) pays for that import again. It listens on a Unix socket
(SOCK_SEQPACKET: one message is one datagram, descriptors ride along with SCM_RIGHTS). One connection per
task process:

    client -> warm:  {"argv": [...], "env": {...}}    with the write end of the task's output pipe attached
    warm -> client:  {"pid": N}                       the task is forked: its own session, its own pid
                 or  {"cold": "why"}                  it will not fork (not safe): start the task cold
    warm -> client:  {"exit": code}                   the task has ended (Popen's convention: -N for signal N)

A client whose end closes before the exit (its launcher or Ray actor died) gets its task stopped as a cold
task whose launcher is gone: SIGTERM, SIGKILL after the task's grace.

The warm process prints READY on its stdout once it listens, and ends when its stdin closes (its launcher
is gone, however it ended) or on SIGTERM.
"""

from __future__ import annotations

import json
import socket
from typing import Optional, Sequence

MODULE = "launcher.task.warm"
READY = "warm-ready"
SOCKET_TYPE = socket.SOCK_SEQPACKET
_MAX_MESSAGE = 1 << 20  # a request carries a task's whole environment: a few kB


def send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def receive(sock: socket.socket) -> tuple[Optional[dict], list[int]]:
    """The next message and the descriptors that came with it; (None, []) once the other end has closed."""
    data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 1)
    if not data:
        for fd in fds:
            socket.close(fd)
        return None, []
    return json.loads(data), fds


def command(python: str, socket_path: str, model: str) -> list[str]:
    """argv of a warm process for one run (on one machine)."""
    return [python, "-m", MODULE, f"--socket={socket_path}", f"--model={model}"]
