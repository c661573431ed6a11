"""One launcher per model directory: a second run on the same directory would interleave checkpoints.

The lock is an flock on `<model_dir>/.launcher.lock`, which the kernel releases however the holder ends
(SIGKILL included), so a crashed launcher never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator

from launcher.cluster import safe_files
from launcher.cluster.errors import UserError

FILE_NAME = ".launcher.lock"


@contextlib.contextmanager
def held(model_dir: str) -> Iterator[None]:
    """Hold the model directory for the duration; UserError if another launcher holds it."""
    path = os.path.join(model_dir, FILE_NAME)
    with safe_files.open_update(path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another launcher"
            raise UserError(f"--model_dir {model_dir!r} is in use by {holder}; "
                            f"one run per model directory") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"launcher pid {os.getpid()}\n")
        lock.flush()
        yield
