"""`python -m launcher.task.warm.base --socket=PATH`: TensorFlow imported once for every run on this machine.

A run's warm process (`launcher.task.warm`) pays TensorFlow's import once per run (3-4 s of CPU here). A
warm base pays it once for as long as it runs: a launcher given its socket (`--warm_base`) asks it for the
run's warm process, and the base forks one. The fork then becomes the warm process a launcher would have
started: its own session, the launcher's pipes as stdin and output, the run's environment, working
directory and network namespace, and its own command line. Only TensorFlow (and what TensorFlow imports)
comes from the base: the launcher's modules are dropped from the fork before the warm process imports
them, the model module was never imported here, so edits between runs take effect as without a base.

Protocol (`launcher.cluster.warm_protocol`, one connection per warm process):

    launcher -> base:  {"argv": [...], "env": {...}, "cwd": "..."}  with its stdin's read end, its
                       output's write end and then the namespaces to enter (opened by the launcher)
    base -> launcher:  {"pid": N}, or {"cold": "why"} (the launcher then starts the warm process itself)
    base -> launcher:  {"exit": code}                               when the warm process has ended

The base forks only when that is safe (no thread beyond TensorFlow's own, `fork_safety`) and only for the
same interpreter and the same import-time environment it has (`warm_protocol.import_env`); it ends on
SIGTERM or SIGINT, removing its socket, or by itself once TensorFlow's files changed (an upgrade).
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import runpy
import select
import signal
import socket
import sys
from typing import Optional

import launcher.task  # noqa: F401  (sets the task environment before TensorFlow's import)
from launcher.cluster import warm_protocol
from launcher.task import import_heap
from launcher.task.warm import fork_safety, fork_server, identity

POLL_SECS = 0.1
_STARTED_IN = os.getcwd()  # `python -m` put it first on sys.path: a warm process gets its own there


def _tensorflow_stamp() -> tuple:
    import tensorflow

    st = os.stat(tensorflow.__file__)
    return st.st_mtime_ns, st.st_size, st.st_ino


class Base:
    def __init__(self, socket_path: str, baseline_threads: int):
        self._socket_path = socket_path
        self._baseline = baseline_threads
        self._env = warm_protocol.import_env(os.environ)
        self._python = os.path.realpath(sys.executable)
        self._stamp = _tensorflow_stamp()
        self._listener = fork_server.listen(socket_path)
        self._clients: list[socket.socket] = []
        self._children: dict[int, socket.socket] = {}  # warm process pid -> its launcher's connection

    def serve(self) -> Optional[list]:
        """Serve until SIGTERM or SIGINT (SystemExit); returns only in a forked child: what it becomes."""
        print(warm_protocol.BASE_READY, flush=True)
        while True:
            readable, _, _ = select.select([self._listener, *self._clients], [], [], POLL_SECS)
            becomes = fork_server.dispatch(self._listener, self._clients, readable, self._on_message)
            if becomes is not None:
                return becomes
            self._reap()

    def remove_socket(self) -> None:
        try:
            os.unlink(self._socket_path)
        except OSError:
            pass

    def _on_message(self, connection: socket.socket) -> Optional[list]:
        try:
            message, fds = warm_protocol.receive(connection, warm_protocol.BASE_MAX_FDS)
        except (OSError, ValueError):
            message, fds = None, []
        if (not isinstance(message, dict) or len(fds) < 2 or connection in self._children.values()
                or fork_server.hung_up(connection)):
            self._close_all(fds)
            self._drop(connection)  # its launcher is gone, gave up on the answer, or talks nonsense
            return None
        why = self._refusal(connection, message)
        if why is not None:
            self._close_all(fds)
            fork_server.answer(connection, {"cold": why})
            self._drop(connection)
            if why.startswith(warm_protocol.BASE_OUTDATED):
                sys.exit(0)  # an upgraded TensorFlow: this base can serve nobody any more
            return None
        return self._fork(connection, message, fds)

    def _refusal(self, connection: socket.socket, message: dict) -> Optional[str]:
        """Why this request gets no fork, or None."""
        argv, env, cwd = message.get("argv"), message.get("env"), message.get("cwd")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and isinstance(env, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
                and isinstance(cwd, str)):
            return "a malformed request"
        if argv[1:3] != ["-m", warm_protocol.MODULE]:
            return f"{' '.join(argv[:3])!r} is not a warm process"
        _, uid = warm_protocol.peer(connection)
        if uid != os.getuid():
            return f"the warm base runs as uid {os.getuid()}, the launcher as {uid}"
        if os.path.realpath(argv[0]) != self._python:
            return f"the warm base runs {self._python}, this run {argv[0]}"
        differs = warm_protocol.env_difference(self._env, warm_protocol.import_env(env))
        if differs:
            return f"the warm base imported TensorFlow with another {differs}"
        if _tensorflow_stamp() != self._stamp:
            return f"{warm_protocol.BASE_OUTDATED}: TensorFlow changed on disk since the warm base imported it"
        return fork_safety.unsafe(self._baseline)

    def _fork(self, connection: socket.socket, message: dict, fds: list[int]) -> Optional[list]:
        sys.stdout.flush()
        import_heap.freeze()
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))
        settled, said = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(settled)
                self._listener.close()
                for other in self._clients:
                    other.close()
                return [message, fds, said]
            except BaseException:
                os._exit(70)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
        os.close(said)
        why = _read_all(settled)  # end of file once the child has taken the run's place (or a reason it could not)
        self._close_all(fds)
        if why:
            os.waitpid(pid, 0)
            fork_server.answer(connection, {"cold": why})
            self._drop(connection)
            return None
        self._children[pid] = connection
        fork_server.answer(connection, {"pid": pid})
        return None

    def _reap(self) -> None:
        for pid, code in fork_server.reaped() if self._children else ():
            connection = self._children.pop(pid, None)
            if connection is not None:
                fork_server.answer(connection, {"exit": code})
                self._drop(connection)

    def _drop(self, connection: socket.socket) -> None:
        # A launcher that went away leaves its warm process alone: that ends with the launcher's pipe.
        for pid in [p for p, c in self._children.items() if c is connection]:
            self._children[pid] = None
        if connection in self._clients:
            self._clients.remove(connection)
        connection.close()

    @staticmethod
    def _close_all(fds: list[int]) -> None:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _enter(fd: int) -> None:
    """Join the namespace `fd` refers to (setns(2); os.setns is Python 3.12+), unless this process is in it
    already (a Ray node's warm process, asked for from the base's own namespace): joining one's own user
    namespace is an error, and any setns needs a privilege that the same namespace does not."""
    target = os.readlink(f"/proc/self/fd/{fd}")  # "net:[4026531840]", as /proc/self/ns/net reads
    kind = target.split(":", 1)[0]
    if kind in ("user", "net") and os.readlink(f"/proc/self/ns/{kind}") == target:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0) != 0:
        raise OSError(ctypes.get_errno(), f"cannot enter the run's namespace: {os.strerror(ctypes.get_errno())}")


def _fresh_output_streams(unbuffered: bool) -> None:
    """sys.stdout and sys.stderr on the new descriptors 1 and 2, buffered as an interpreter started with
    this environment would buffer them (the base's own were made for its own start)."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        raw = io.FileIO(fd, "w", closefd=False)
        if unbuffered:
            stream = io.TextIOWrapper(raw, encoding=old.encoding, errors=old.errors, write_through=True)
        else:
            stream = io.TextIOWrapper(io.BufferedWriter(raw), encoding=old.encoding, errors=old.errors,
                                      line_buffering=name == "stderr")
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def become_warm(message: dict, fds: list[int], said: int) -> None:
    """In the fork: take the run's place, then run the warm process's program (never returns)."""
    try:
        os.setsid()
        stdin, output, namespaces = fds[0], fds[1], fds[2:]
        for fd in namespaces:  # as `nsenter` would: the user namespace first, when there is one
            _enter(fd)
            os.close(fd)
        os.chdir(message["cwd"])
    except OSError as e:
        os.write(said, str(e).encode())
        os._exit(70)
    os.dup2(stdin, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)  # as a started one: stderr=STDOUT
    os.close(stdin)
    os.close(output)
    env = dict(message["env"])
    _fresh_output_streams(unbuffered=bool(env.get("PYTHONUNBUFFERED")))
    os.environ.clear()
    os.environ.update(env)
    argv = message["argv"]
    identity.take(argv, env, "warm")
    if sys.path and sys.path[0] == _STARTED_IN:
        sys.path[0] = message["cwd"]
    sys.argv = [os.path.join(os.path.dirname(__file__), "__main__.py"), *argv[3:]]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
    os.close(said)  # the base may now give the launcher this pid
    # The launcher's own modules come fresh from the run's files, as a started warm process imports them.
    for name in [n for n in sys.modules if n == "launcher" or n.startswith("launcher.")]:
        del sys.modules[name]
    runpy.run_module(warm_protocol.MODULE, run_name="__main__", alter_sys=True)
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {warm_protocol.BASE_MODULE}")
    parser.add_argument("--socket", required=True, help="where to listen (a path; made 0600)")
    args = parser.parse_args()
    for name, value in warm_protocol.RUN_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import_heap.pause()
    import tensorflow  # noqa: F401

    baseline = fork_safety.os_threads()
    import_heap.imports_done()

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    base = Base(args.socket, baseline)
    try:
        becomes = base.serve()
    finally:
        if os.getpid() == base_pid:
            base.remove_socket()
    become_warm(*becomes)


base_pid = os.getpid()

if __name__ == "__main__":
    main()
