"""Tasks as OS processes on this machine.

Each task starts in a session of its own, so that it and anything it spawns can be signalled as one process
group, and so that a Ctrl-C on the terminal reaches the launcher alone, which then stops the tasks in order.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Callable, Mapping, Optional

from launcher.cluster.errors import UserError
from launcher.launch import isolation as isolation_lib
from launcher.launch import ports
from launcher.cluster.spec import ClusterSpec, TaskId


class LocalProcess:
    def __init__(self, argv: list[str], env: Mapping[str, str], on_line: Callable[[str], None]):
        self._proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True, text=True,
                                      errors="replace", bufsize=1)
        self.pid: Optional[int] = self._proc.pid
        self._reader = threading.Thread(target=self._read, args=(on_line,), name=f"output-{self.pid}",
                                         daemon=True)
        self._reader.start()

    def _read(self, on_line: Callable[[str], None]) -> None:
        with self._proc.stdout:
            for line in self._proc.stdout:
                on_line(line)

    def poll(self) -> Optional[int]:
        code = self._proc.poll()
        if code is None:
            return None
        # The last lines (the error that ended it) must be in before anyone reports on the task.
        self._reader.join(timeout=5)
        return code

    def signal(self, signum: int) -> None:
        try:
            os.killpg(self._proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # already gone (a zombie's group may refuse)


class LocalBackend:
    """Tasks as processes on this machine, reachable from nowhere else (see `isolation`)."""

    def __init__(self, isolation: isolation_lib.Mode = isolation_lib.Mode.AUTO,
                 warn: Callable[[str], None] = lambda line: sys.stderr.write(line + "\n")):
        self._mode = isolation
        self._warn = warn
        self._namespace: Optional[isolation_lib.Namespace] = None

    def resolve(self, spec: ClusterSpec) -> ClusterSpec:
        spec = ports.resolve_local(spec)
        if self._mode is isolation_lib.Mode.OFF:
            return spec
        try:
            self._namespace = isolation_lib.Namespace()
        except isolation_lib.Unavailable as e:
            if self._mode is isolation_lib.Mode.REQUIRED:
                raise UserError(f"--isolation required: no network namespace can be made here ({e})") from None
            self._warn(isolation_lib.exposure_warning(spec, str(e)))
        return spec

    def resolve_added(self, spec: ClusterSpec, tasks: list[TaskId]) -> ClusterSpec:
        return ports.pick_added(spec, tasks)

    def relocate(self, task: TaskId) -> None:
        return None  # one machine: a task never moves

    def start(self, task: TaskId, argv: list[str], env: Mapping[str, str],
              on_line: Callable[[str], None]) -> LocalProcess:
        if self._namespace is not None:
            argv = self._namespace.wrap(argv)
        return LocalProcess(argv, env, on_line)

    def close(self) -> None:
        if self._namespace is not None:
            self._namespace.close()
            self._namespace = None
