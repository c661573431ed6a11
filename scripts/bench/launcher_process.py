"""A `launcher run` child as a trial runs it: its command line, a throwaway directory, a log, a sure stop.

Both the launcher trial and the recovery trial need the same: a fresh model directory that is deleted
afterwards, the launcher's output in a file (its tail goes into error messages), and a launcher that is
stopped, with everything it started, however the trial ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator, Optional

from bench.processes import start, stop_launcher


@dataclasses.dataclass(frozen=True)
class TrialDir:
    """A trial's temporary directory: the model directory and the launcher's log are in it."""

    workdir: str

    @property
    def model_dir(self) -> str:
        return os.path.join(self.workdir, "model")

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "launcher.log")


@contextlib.contextmanager
def trial_dir(prefix: str) -> Iterator[TrialDir]:
    """A fresh temporary directory, deleted at the end."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        yield TrialDir(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def launcher_argv(spec: str, model: str, model_dir: str, train_steps: int, *flags: str) -> list[str]:
    """`python -m launcher run` with this interpreter, for `spec` and `model`, and further `flags`."""
    return [sys.executable, "-m", "launcher", "run", f"--spec={spec}", f"--model_dir={model_dir}",
            f"--train_steps={train_steps}", f"--model={model}", *flags]


@contextlib.contextmanager
def running_launcher(argv: list[str], log_path: str,
                     env: Optional[dict[str, str]] = None) -> Iterator[subprocess.Popen]:
    """The launcher started with its output in `log_path`; at the end, if still running, SIGTERM and then
    SIGKILL of all it started."""
    with open(log_path, "w") as log:
        proc = start(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_launcher(proc)


def log_tail(path: str, lines: int = 15) -> str:
    """The last `lines` lines of a log, for an error message."""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
