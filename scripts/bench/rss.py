"""Peak memory of a process tree, per task: sampled in a thread while a trial runs."""

from __future__ import annotations

import threading
from typing import Any

import psutil

from bench.task_processes import task_name

SAMPLE_SECS = 0.2
MB = 2 ** 20


class RssSampler:
    """Samples, in a thread, the RSS of a process and all its descendants; keeps the peak per key.

    The root is keyed `root_name`; a task by its job and index; anything else by its pid.
    """

    def __init__(self, pid: int, root_name: str, every_secs: float = SAMPLE_SECS):
        self._root = psutil.Process(pid)
        self._root_name = root_name
        self._every_secs = every_secs
        self._keys: dict[psutil.Process, str] = {}
        self.created: dict[str, float] = {}  # key -> create time of its first process
        self.peak_mb: dict[str, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self._every_secs)

    def _key(self, proc: psutil.Process) -> str:
        if proc not in self._keys:
            key = self._root_name if proc == self._root else task_name(proc) or f"pid:{proc.pid}"
            self._keys[proc] = key
            self.created.setdefault(key, proc.create_time())
        return self._keys[proc]

    def sample(self) -> None:
        """One sample of every live process in the tree."""
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return
        for proc in procs:
            try:
                key, rss = self._key(proc), proc.memory_info().rss / MB
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            self.peak_mb[key] = max(self.peak_mb.get(key, 0.0), rss)
