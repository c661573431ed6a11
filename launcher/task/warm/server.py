"""The warm process's loop: accept requests, fork tasks, reap them and report their exits (see
`launcher.cluster.warm_protocol`). One thread, no TensorFlow call: forks stay safe (`fork_safety`)."""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
from typing import Optional

from launcher.cluster import warm_protocol
from launcher.cluster.stop_signals import STOP_SIGNALS
from launcher.task import import_heap
from launcher.task.warm import child, fork_safety, fork_server

POLL_SECS = 0.02
ORPHAN_WAIT_SECS = 1.0


class Server:
    def __init__(self, socket_path: str, baseline_threads: int, model_error: Optional[str],
                 orphan_grace_secs: float):
        self._baseline = baseline_threads
        self._model_error = model_error
        self._grace = orphan_grace_secs
        self._socket_path = socket_path
        self._listener = fork_server.listen(socket_path)
        self._clients: list[socket.socket] = []  # connections: one per task process
        self._tasks: dict[int, socket.socket] = {}  # pid -> its client's connection
        # pid -> [when to SIGTERM it, when to SIGKILL it]: its client went away. The SIGTERM waits a moment:
        # when the launcher itself is gone, this process's stdin closes too and it exits, and the tasks'
        # parent watch stops them, once (a second SIGTERM would mean "now": the chief would not save).
        self._orphans: dict[int, list[Optional[float]]] = {}

    def serve(self) -> child.Request:
        """Serve until stdin closes (the launcher is gone); returns only in a forked child, its request."""
        # From now on only the end of stdin ends this process. A stop signal is its tasks' to take: under
        # Slurm one sent to the whole job (scancel, the time limit) reaches this process and its tasks alike,
        # and this process ending then would make each task stop a second time (its parent watch), which
        # means "now", before the chief's save. The forks install their own handlers (`child.HELD`).
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        print(warm_protocol.READY, flush=True)
        while True:
            readable, _, _ = select.select([self._listener, sys.stdin, *self._clients], [], [], POLL_SECS)
            if sys.stdin in readable and not os.read(sys.stdin.fileno(), 4096):
                self._remove_socket()
                sys.exit(0)  # the tasks notice their parent's end by themselves (their parent watch)
            request = fork_server.dispatch(self._listener, self._clients, readable, self._on_message)
            if request is not None:
                return request  # in the child
            self._reap()
            self._stop_orphans()

    def _remove_socket(self) -> None:
        # A launcher that ends well removes the socket's directory itself; one that was killed cannot, and
        # nothing may be left behind: its directory (made for this socket alone) goes when it is empty.
        for remove, path in ((os.unlink, self._socket_path), (os.rmdir, os.path.dirname(self._socket_path))):
            try:
                remove(path)
            except OSError:
                pass  # removed meanwhile by the launcher, or not ours to remove (not empty)

    def _on_message(self, connection: socket.socket) -> Optional[child.Request]:
        try:
            message, fds = warm_protocol.receive(connection)
        except (OSError, ValueError):
            message, fds = None, []
        if (not isinstance(message, dict) or len(fds) != 1 or connection in self._tasks.values()
                or fork_server.hung_up(connection)):
            for fd in fds:
                os.close(fd)
            self._drop(connection)  # its client is gone, gave up on the answer, or talks nonsense
            return None
        why = child.not_a_task(message.get("argv"), message.get("env")) or fork_safety.unsafe(self._baseline)
        if why is not None:
            os.close(fds[0])
            fork_server.answer(connection, {"cold": why})
            self._drop(connection)
            return None
        return self._fork(connection, message, fds[0])

    def _fork(self, connection: socket.socket, message: dict, output_fd: int) -> Optional[child.Request]:
        sys.stdout.flush()
        import_heap.freeze()  # what this loop made since the last fork, too (see `import_heap`)
        signal.pthread_sigmask(signal.SIG_BLOCK, child.HELD)
        in_session, said = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()  # before the launcher learns the pid: it signals the task's process group
                os.close(said)
                os.close(in_session)
                self._listener.close()
                for other in self._clients:
                    other.close()
                return child.Request(message["argv"], message["env"], output_fd, self._model_error,
                                     child.cpus_of(message))
            except BaseException:
                os._exit(70)  # never back into the loop of the warm process
        signal.pthread_sigmask(signal.SIG_UNBLOCK, child.HELD)
        os.close(said)
        os.read(in_session, 1)  # end of file: the child has its session (or is gone)
        os.close(in_session)
        os.close(output_fd)
        self._tasks[pid] = connection
        fork_server.answer(connection, {"pid": pid})
        return None

    def _drop(self, connection: socket.socket) -> None:
        for pid, held in list(self._tasks.items()):
            if held is connection and pid not in self._orphans:
                # As a cold task whose launcher died: asked to stop (the chief saves), killed after the grace.
                now = time.monotonic()
                self._orphans[pid] = [now + ORPHAN_WAIT_SECS, now + ORPHAN_WAIT_SECS + self._grace]
        if connection in self._clients:
            self._clients.remove(connection)
        connection.close()

    def _reap(self) -> None:
        for pid, code in fork_server.reaped() if self._tasks else ():
            connection = self._tasks.pop(pid, None)
            self._orphans.pop(pid, None)
            if connection is not None and connection in self._clients:
                fork_server.answer(connection, {"exit": code})
                self._clients.remove(connection)
                connection.close()

    def _stop_orphans(self) -> None:
        now = time.monotonic()
        for pid, (term_at, kill_at) in list(self._orphans.items()):
            if term_at is not None and now >= term_at:
                _signal(pid, signal.SIGTERM)
                self._orphans[pid][0] = None
            elif now >= kill_at:
                _signal(pid, signal.SIGKILL)
                del self._orphans[pid]


def _signal(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
