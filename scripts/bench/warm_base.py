"""A warm base (`launcher.task.warm.base`) for the runs a benchmark or a test session makes: started in a
directory of its own, ready once it says so, stopped by pid."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from launcher.cluster import task_env, warm_protocol


class WarmBase:
    def __init__(self, directory: str, env: dict[str, str], timeout_secs: float):
        self.socket = os.path.join(directory, "base.sock")
        self.log = os.path.join(directory, "base.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", warm_protocol.BASE_MODULE, f"--socket={self.socket}"],
                                         env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_secs
        while warm_protocol.BASE_READY not in self._said():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the warm base did not start:\n{self._said()[-3000:]}")
            time.sleep(0.1)

    def _said(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def forks_for(self, launcher_pid: int) -> list[psutil.Process]:
        """The warm processes the base forked and the tasks of the launcher `launcher_pid` forked from them
        (they name their launcher in their environment)."""
        found = []
        try:
            below = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for proc in below:
            try:
                if proc.ppid() == self.proc.pid or proc.environ().get(task_env.LAUNCHER_PID) == str(launcher_pid):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
