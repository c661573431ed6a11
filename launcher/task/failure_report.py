"""A task's last word before a failing exit: its exception as a status line (`status.FAILURE`).

In the manner of torch elastic's error file: the task knows its own failure (the exception's type and
message, the innermost frame of the user's own code, an OSError's errno and path, a TensorFlow error's
code), so the launcher names the root cause from this record, not by guessing from the log. What a task
cannot say (killed by the OOM killer, SIGKILL) the launcher still finds from the system and the log.

Reporting must never become a failure of its own: stdout may be a closed pipe (the launcher is gone), so
any error while writing is swallowed, and the original exception goes on as it would have.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Optional

from launcher.cluster import status
from launcher.cluster.user_frames import is_plumbing

MESSAGE_CHARS = 4000


def _tf_code(exc: BaseException) -> Optional[str]:
    code = getattr(exc, "error_code", None)
    if not isinstance(code, int):
        return None
    import tensorflow as tf  # already imported by the task program; only asked for a TF error

    names = {getattr(tf.errors, n): n for n in dir(tf.errors) if n.isupper() and isinstance(getattr(tf.errors, n), int)}
    return names.get(code)


def _user_frame(exc: BaseException) -> Optional[str]:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not is_plumbing(f.filename)]
    if not frames:
        return None
    f = frames[-1]
    return f"{f.filename}:{f.lineno} in {f.name}" + (f": {f.line}" if f.line else "")


def describe(exc: BaseException) -> dict:
    """The failure fields of `exc` (see `status.FAILURE_FIELDS`)."""
    message = getattr(exc, "message", None)  # a TensorFlow OpError's own message, without its repr
    message = message if isinstance(message, str) else str(exc)
    fields = {"type": type(exc).__name__, "message": message[:MESSAGE_CHARS], "frame": _user_frame(exc),
              "errno": getattr(exc, "errno", None), "filename": getattr(exc, "filename", None),
              "tf_code": _tf_code(exc)}
    return status.check_failure({k: v for k, v in fields.items() if v is not None})


def report(exc: BaseException) -> None:
    """Emit `exc` as a FAILURE status line, if stdout still takes it."""
    try:
        if not status.emit(status.FAILURE, failure=describe(exc)):  # the pipe is closed: nobody reads
            _silence_stdout()
    except Exception:  # noqa: BLE001  a full disk, an odd exception: the exit code tells the rest
        pass


def _silence_stdout() -> None:
    """Nobody reads stdout any more: send it to /dev/null, so that the flush at exit cannot fail too
    (Python would then exit 120 instead of the task's own code; see the `signal` module's docs on SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
