"""Warm starts, the launcher's side: one warm process per run and machine, and the tasks it forks.

The warm process (`python -m launcher.task.warm`, see `launcher.cluster.warm_protocol`) imports TensorFlow,
the task program and the model module once; each task process, restarts included, is then a fork of it
that trains within a second instead of paying the import again. The launcher never imports TensorFlow for
this: it starts the warm process like a task, makes each task's output pipe and hands its write end over
the socket, and gets the task's pid (which it signals directly, as a cold task's) and, at its end, its exit
status. When the warm process will not fork (not safe, or it failed to start) the task starts cold.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Callable, Mapping, Optional, Sequence

from launcher.cluster import warm_protocol
from launcher.launch import proc_state

READY_TIMEOUT_SECS = 300.0  # TensorFlow's import, on a loaded machine; a cold start would wait as long
STOP_WAIT_SECS = 5.0


class StartCold(Exception):
    """The warm process will not fork this task; the message says why."""


class ColdReasons:
    """Why tasks start cold, said once per reason and run: the first task a reason sends cold is named, the
    others would only repeat the line (every task of a run whose model module starts a thread, say)."""

    def __init__(self, warn: Callable[[str], None]):
        self._warn = warn
        self._said: set[str] = set()

    def say(self, reason: str, line: str) -> None:
        if reason not in self._said:
            self._said.add(reason)
            self._warn(line)


@dataclasses.dataclass(frozen=True)
class WarmOptions:
    """What a run's warm processes import and the environment they start with (a task's, without what
    belongs to one task: each request brings its own)."""

    model: str
    env: Mapping[str, str]
    python: str = sys.executable
    base: Optional[str] = None  # a warm base's socket (--warm_base): it forks the warm process, if it will


def read_lines(stream, on_line: Callable[[str], None]) -> None:
    """Every line of a task's output to `on_line`, until its last writer has closed the pipe."""
    with stream:
        for line in stream:
            on_line(line)


class WarmTask:
    """One task process forked by a warm process (a backend's TaskHandle)."""

    def __init__(self, socket_path: str, argv: list[str], env: Mapping[str, str], on_line: Callable[[str], None],
                 warm_argv: list[str], on_silent: Callable[[str], None] = lambda why: None,
                 on_end: Callable[[], None] = lambda: None):
        """`on_silent(why)`: the warm process did not answer this request, or report the task's end, in time
        (`warm_protocol.ANSWER_SECS`; see `_exit_code`). `on_end()`: the task has ended (see `Backend.start`)."""
        read_fd, write_fd = os.pipe()
        try:
            connection, pid = warm_protocol.ask_for_task(socket_path, argv, env, write_fd)
        except warm_protocol.Refused as e:
            os.close(read_fd)
            if isinstance(e, warm_protocol.Silent):
                on_silent(str(e))
            raise StartCold(str(e)) from None
        finally:
            os.close(write_fd)  # the task holds it now: end of file comes when the task (and its children) end
        self.pid: Optional[int] = pid
        self._on_silent = on_silent
        self._pidfd = _pidfd_of_child(pid, warm_protocol.peer(connection)[0])
        # Without the privilege to show its own command line (see task.warm.identity) a forked task shows
        # its warm process's: the watchdog accepts either as this task's.
        self.warm_argv = warm_argv
        self._code: Optional[int] = None
        self._reader = threading.Thread(target=read_lines, args=(os.fdopen(read_fd, errors="replace"), on_line),
                                        name=f"output-{self.pid}", daemon=True)
        self._reader.start()
        self._waiter = threading.Thread(target=self._wait, args=(connection, on_end), name=f"exit-{self.pid}",
                                        daemon=True)
        self._waiter.start()

    def _wait(self, connection: socket.socket, on_end: Callable[[], None]) -> None:
        code = self._exit_code(connection)
        if code is None:
            # The warm process died first: the task stops by itself (its parent watch), unseen. Counted as
            # killed, once its output has ended.
            self._reader.join()
            code = -signal.SIGKILL
        if self._pidfd is not None:
            os.close(self._pidfd)
        self._code = code
        on_end()

    def _exit_code(self, connection: socket.socket) -> Optional[int]:
        """The task's exit code as its warm process reports it, or None if the warm process ended first.

        A warm process that is stopped (SIGSTOP) or stuck reports nothing: its tasks would end unseen and
        never restart. So the task's own end is watched too (its pidfd, readable once it has exited even
        though this process is not its parent); a report that has not come ANSWER_SECS later is not waited
        for: the code is read where the kernel keeps it until the warm process reaps its child."""
        if self._pidfd is not None:
            readable, _, _ = select.select([connection, self._pidfd], [], [])
            if connection not in readable and not select.select([connection], [], [], warm_protocol.ANSWER_SECS)[0]:
                connection.close()
                self._on_silent(f"the warm process did not report the end of task process {self.pid} within "
                                f"{warm_protocol.ANSWER_SECS:g}s (stopped or stuck)")
                code = proc_state.zombie_exit_code(self.pid)
                return -signal.SIGKILL if code is None else code
        return warm_protocol.receive_exit(connection)

    def poll(self) -> Optional[int]:
        if self._code is None:
            return None
        self._reader.join(timeout=5)  # the last lines (the error that ended it) first
        return self._code

    def signal(self, signum: int) -> None:
        if self._code is not None:
            return  # reaped by the warm process: its pid may already be another process's
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _pidfd_of_child(pid: int, parent: int) -> Optional[int]:
    """A pidfd of `parent`'s child `pid`; None if that pid is no longer its child (ended and reaped)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    if proc_state.parent(pid) != parent:  # reaped and the pid taken by another process before the pidfd was opened
        os.close(pidfd)
        return None
    return pidfd


class _FromBase:
    """A warm process that a warm base forked for this run (`launcher.task.warm.base`), seen as the Popen of a
    started one: its pid, a pipe to its stdin and one from its output, its exit code once the base reaped it.
    Signals go through a pidfd: never to another process that got the pid after it."""

    def __init__(self, base: str, argv: list[str], env: Mapping[str, str], enter: Sequence[str]):
        stdin_read, stdin_write = os.pipe()
        output_read, output_write = os.pipe()
        handed = [stdin_read, output_write]
        connection = socket.socket(socket.AF_UNIX, warm_protocol.SOCKET_TYPE)
        connection.settimeout(warm_protocol.ANSWER_SECS)  # a stopped base must not hold up the run's start
        try:
            try:
                handed += [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in enter]
                connection.connect(base)
                base_pid, base_uid = warm_protocol.peer(connection)
                if base_uid != os.getuid():  # a socket someone else put there: never hand it our pipes
                    raise StartCold(f"it runs as uid {base_uid}, not as this user")
                warm_protocol.send(connection, {"argv": argv, "env": dict(env), "cwd": os.getcwd()}, handed)
            finally:
                for fd in handed:
                    os.close(fd)
            answer, _ = warm_protocol.receive(connection)
            if answer is None or not isinstance(answer.get("pid"), int):
                raise StartCold(answer.get("cold", "its answer made no sense") if answer else "it closed the connection")
            connection.settimeout(None)  # the exit comes when the warm process ends
            self.pid = answer["pid"]
            self._pidfd = os.pidfd_open(self.pid)
            if proc_state.parent(self.pid) != base_pid:  # signals go to this pid: it must be the base's own fork
                os.close(self._pidfd)
                raise StartCold(f"it answered pid {self.pid}, which is not its child")
        except (OSError, ValueError, StartCold) as e:
            for fd in (stdin_write, output_read):
                os.close(fd)
            connection.close()
            raise StartCold(str(e) if isinstance(e, StartCold) else f"it does not answer ({e})") from None
        self.stdin = os.fdopen(stdin_write, "w")
        self.stdout = os.fdopen(output_read, errors="replace")
        self.returncode: Optional[int] = None
        self._ended = threading.Event()
        threading.Thread(target=self._wait, args=(connection,), name=f"exit-{self.pid}", daemon=True).start()

    def _wait(self, connection: socket.socket) -> None:
        code = warm_protocol.receive_exit(connection)
        if code is None:
            # The base ended first (its forks live on without it): the pidfd tells when this one ends.
            select.select([self._pidfd], [], [])
            code = -signal.SIGKILL
        self.returncode = code
        self._ended.set()

    def poll(self) -> Optional[int]:
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("warm process", timeout)
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self._pidfd >= 0 and self.returncode is None:
            try:
                signal.pidfd_send_signal(self._pidfd, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class WarmProcess:
    """The warm process of one run on this machine: started at once (its import overlaps whatever comes
    before the first task), stopped by pid at the run's end, and by itself should the launcher die.

    Given a warm base (`options.base`), it is a fork of that base in the run's namespaces (`enter`: the
    namespace files a `wrap` would enter); if the base will not fork it, `base_refusal` says why and it is
    started as without a base."""

    def __init__(self, options: WarmOptions, wrap: Callable[[list[str]], list[str]] = list,
                 on_line: Optional[Callable[[str], None]] = None, enter: Sequence[str] = (),
                 socket_path: Optional[str] = None):
        """`socket_path`: where a warm process on another machine (`wrap` starts it there) listens; it makes
        the socket's private directory itself. Else the socket is in a private directory made here."""
        self._dir = None
        if socket_path is None:
            self._dir = tempfile.mkdtemp(prefix="launcher-warm-")  # 0700: only this user reaches the socket
            socket_path = os.path.join(self._dir, "socket")
        self.socket_path = socket_path
        self.argv = warm_protocol.command(options.python, self.socket_path, options.model)
        self.base_refusal: Optional[str] = None
        self._proc = None
        if options.base:
            try:
                self._proc = _FromBase(options.base, self.argv, options.env, enter)
            except StartCold as e:
                self.base_refusal = f"the warm base {options.base} will not start this run's warm process: {e}"
        if self._proc is None:
            self._proc = subprocess.Popen(wrap(self.argv), env=dict(options.env), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          start_new_session=True, text=True, errors="replace")
        self.pid = self._proc.pid
        self._ready = False
        self._silent: Optional[str] = None  # why it is asked nothing more (it did not answer), once it did not
        self._settled = threading.Event()
        self.last_lines: collections.deque = collections.deque(maxlen=5)
        self._on_line = on_line
        threading.Thread(target=self._follow, name="warm-output", daemon=True).start()

    def _follow(self) -> None:
        for line in self._proc.stdout:
            if line.strip() == warm_protocol.READY and not self._ready:
                self._ready = True
                self._settled.set()
            else:
                self.last_lines.append(line.rstrip("\n"))
                if self._on_line is not None:
                    self._on_line(line)
        self._settled.set()  # it ended

    def wait_ready(self, timeout_secs: float = READY_TIMEOUT_SECS) -> Optional[str]:
        """None once it forks; else why it cannot."""
        self._settled.wait(timeout_secs)
        if self._ready and self._proc.poll() is None:
            return None
        if not self._settled.is_set():
            return f"the warm process did not finish its imports within {timeout_secs:g}s"
        said = next((line for line in reversed(self.last_lines) if line.strip()), "")
        code = self._proc.wait()
        return f"the warm process ended with exit code {code}" + (f": {said}" if said else "")

    def start(self, argv: list[str], env: Mapping[str, str], on_line: Callable[[str], None],
              on_end: Callable[[], None] = lambda: None) -> WarmTask:
        why = self._silent or self.wait_ready()
        if why is not None:
            raise StartCold(why)
        return WarmTask(self.socket_path, argv, env, on_line, self.argv, on_silent=self._given_up, on_end=on_end)

    def _given_up(self, why: str) -> None:
        # Stopped or stuck: asking again would hold up each later start as long. Its tasks live on.
        self._silent = self._silent or why

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # it ends at end of file; SIGTERM in case it is still importing
            try:
                self._proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self._proc.wait(timeout=STOP_WAIT_SECS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
