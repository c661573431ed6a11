"""The kernel's keepalive on a task's connections (launcher.task.tcp_keepalive): real sockets, real options."""

from __future__ import annotations

import socket
import threading

import pytest

from launcher.task import tcp_keepalive

pytestmark = pytest.mark.unit


def _options(sock: socket.socket) -> tuple[int, ...]:
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))


WANTED = (1, tcp_keepalive.IDLE_SECS, tcp_keepalive.INTERVAL_SECS, tcp_keepalive.COUNT, tcp_keepalive.USER_TIMEOUT_MS)


def test_every_new_tcp_socket_of_the_process_gets_keepalive_and_others_are_left_alone(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        accepted, _ = server.accept()
        with accepted:
            assert _options(client)[0] == 0  # the kernel's default: none
            seen: set[str] = set()
            assert tcp_keepalive.scan(seen) >= 3  # the listener, both ends of the connection
            assert _options(client) == WANTED and _options(accepted) == WANTED
            assert udp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
            assert unix.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
            # Each socket once: a second look finds nothing new, and the duplicates it made are closed.
            assert tcp_keepalive.scan(seen) == 0
            client.sendall(b"still usable")
            assert accepted.recv(100) == b"still usable"


def test_the_watching_thread_reaches_a_connection_made_after_it_started():
    stop = threading.Event()
    thread = tcp_keepalive.start(stop)
    try:
        with socket.create_server(("127.0.0.1", 0)) as server, \
                socket.create_connection(server.getsockname()) as client:
            deadline = threading.Event()
            for _ in range(int(5 / 0.1)):
                if _options(client) == WANTED:
                    break
                deadline.wait(0.1)
            assert _options(client) == WANTED
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
