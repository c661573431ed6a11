"""Tasks as OS processes on this machine.

Each task starts in a session of its own, so that it and anything it spawns can be signalled as one process
group, and so that a Ctrl-C on the terminal reaches the launcher alone, which then stops the tasks in order.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Callable, Mapping, Optional

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
    def resolve(self, spec: ClusterSpec) -> ClusterSpec:
        return ports.resolve_local(spec)

    def relocate(self, task: TaskId) -> None:
        return None  # one machine: a task never moves

    def start(self, task: TaskId, argv: list[str], env: Mapping[str, str],
              on_line: Callable[[str], None]) -> LocalProcess:
        return LocalProcess(argv, env, on_line)

    def close(self) -> None:
        pass
