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

from launcher.cluster import gpus as gpus_lib, settings
from launcher.cluster.errors import UserError
from launcher.launch import isolation as isolation_lib
from launcher.launch import ports
from launcher.launch.backends.warm import ColdReasons, StartCold, WarmOptions, WarmProcess, read_lines
from launcher.cluster.spec import ClusterSpec, TaskId


class LocalProcess:
    def __init__(self, argv: list[str], env: Mapping[str, str], on_line: Callable[[str], None],
                 on_end: Callable[[], None] = lambda: None):
        self._proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True, text=True,
                                      errors="replace", bufsize=1)
        self.pid: Optional[int] = self._proc.pid
        self._reader = threading.Thread(target=self._follow, args=(on_line, on_end), name=f"output-{self.pid}",
                                        daemon=True)
        self._reader.start()

    def _follow(self, on_line: Callable[[str], None], on_end: Callable[[], None]) -> None:
        read_lines(self._proc.stdout, on_line)
        self._proc.wait()  # its output ends with it (or with the last child that shares it)
        on_end()

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
    """Tasks as processes on this machine, reachable from nowhere else (see `isolation`); forked from the
    run's warm process when given `warm` (see `warm`), else started cold."""

    def __init__(self, isolation: isolation_lib.Mode = isolation_lib.Mode.AUTO,
                 warn: Callable[[str], None] = lambda line: sys.stderr.write(line + "\n"),
                 warm: Optional[WarmOptions] = None, gpus: Optional[settings.Gpus] = None):
        self._mode = isolation
        self._warn = warn
        self._namespace: Optional[isolation_lib.Namespace] = None
        self._warm_options = warm
        self._warm: Optional[WarmProcess] = None
        self._cold_reasons = ColdReasons(warn)
        gpus = gpus or settings.Gpus()
        self._gpus = (gpus.gpus_per_task, gpus.evaluator_gpus)
        self._gpu_env: dict[TaskId, dict[str, str]] = {}  # fixed for the run: a restart keeps its GPUs

    def resolve(self, spec: ClusterSpec) -> ClusterSpec:
        if gpus_lib.in_use(*self._gpus):
            self._gpu_env = gpus_lib.assign(spec, *self._gpus, *gpus_lib.visible())
        spec = ports.resolve_local(spec)
        if self._mode is not isolation_lib.Mode.OFF:
            try:
                self._namespace = isolation_lib.Namespace()
            except isolation_lib.Unavailable as e:
                if self._mode is isolation_lib.Mode.REQUIRED:
                    raise UserError(f"--isolation required: no network namespace can be made here ({e})") from None
                self._warn(isolation_lib.exposure_warning(spec, str(e)))
        if self._warm_options is not None:
            # Now, so that its imports overlap the launcher's last preparations. A warm base's fork joins the
            # run's namespace, or without one the launcher's own network: the base's may be another.
            self._warm = WarmProcess(self._warm_options, wrap=self._wrap,
                                     enter=self._namespace.files() if self._namespace is not None
                                     else ["/proc/self/ns/net"])
            if self._warm.base_refusal is not None:
                self._warn(f"[launcher] {self._warm.base_refusal}; the run's warm process imports TensorFlow itself")
        return spec

    def _wrap(self, argv: list[str]) -> list[str]:
        return argv if self._namespace is None else self._namespace.wrap(argv)

    def resolve_added(self, spec: ClusterSpec, tasks: list[TaskId]) -> ClusterSpec:
        return ports.pick_added(spec, tasks)

    def relocate(self, task: TaskId) -> None:
        return None  # one machine: a task never moves

    def start(self, task: TaskId, argv: list[str], env: Mapping[str, str],
              on_line: Callable[[str], None], on_end: Callable[[], None] = lambda: None):
        env = {**env, **self._gpu_env.get(task, {})}  # its own GPUs, for every process of the task
        if self._warm is not None:
            try:
                return self._warm.start(argv, env, on_line, on_end)
            except StartCold as e:
                self._cold_reasons.say(str(e), f"[launcher] {task} starts cold: {e}")
        return LocalProcess(self._wrap(argv), env, on_line, on_end)

    def close(self) -> None:
        if self._warm is not None:
            self._warm.close()
            self._warm = None
        if self._namespace is not None:
            self._namespace.close()
            self._namespace = None
