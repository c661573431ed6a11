"""Whether a task's server is there: a TCP connect to its address, which no TensorFlow call can tell in time.

TensorFlow's CreateSession waits without end for a task that does not answer, and a queue op waits for a
worker that has exited; a connection refused says at once that nobody listens.
"""

from __future__ import annotations

import socket


def accepts_connections(address: str, timeout_secs: float = 2.0) -> bool:
    """Whether something listens at `address` ("host:port", IPv6 hosts in brackets)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_secs):
            return True
    except (OSError, ValueError):
        return False
