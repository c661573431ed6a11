"""A task whose launcher is gone ends as a preempted task does: SIGKILL leaves a launcher no chance to stop
its tasks, and the work done since the last checkpoint must not be lost with it.

Once the launcher (named in the environment) is gone, the task:
- writes its own output to its log file, `<model_dir>/logs/<job>-<index>.log`, which the launcher wrote
  until then (opened without following symlinks, see `safe_files`), starting with a line that says why it
  stops: stdout and stderr were a pipe to the launcher, whose reading end is closed now;
- stops as on SIGTERM: the chief saves a checkpoint at the step it reached, every hook's end() runs. A ps
  keeps serving until the chief has ended, as on any stop signal (see `ps_release`);
- dies after a grace, whatever it is doing then.

A write to the dead pipe before the output is moved (a `print`, a status line) must not abort the task
either: `status.emit` ignores it, and `guard_stdout` moves the output at the first such write.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Optional

from absl import logging

from launcher.cluster import safe_files, task_env
from launcher.cluster.errors import UserError

_moved = threading.Lock()
_log_path: Optional[str] = None
_output_moved = False


def log_path(model_dir: str, job: str, index: int) -> str:
    """The task's log file, as the launcher names it (`launch.task_output.log_path`)."""
    return os.path.join(model_dir, "logs", f"{job}-{index}.log")


def move_output(why: str) -> None:
    """Send stdout and stderr (file descriptors 1 and 2, so TensorFlow's C++ logs too) to the task's own
    log file, after a line saying `why`; to /dev/null if that file cannot be written. Once only."""
    global _output_moved
    with _moved:
        if _output_moved:
            return
        _output_moved = True
        fd = None
        if _log_path is not None:
            try:
                safe_files.check_not_link(os.path.dirname(_log_path))  # logs/ itself planted as a link
                fd = safe_files.append_fd(_log_path)
            except (OSError, UserError):
                fd = None
        if fd is None:
            fd = os.open(os.devnull, os.O_WRONLY)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            os.write(fd, f"=== {stamp}: {why}\n".encode())
        except OSError:
            pass  # a full disk: the task still stops in order
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # what the dead pipe did not take is lost; what follows goes to the file
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


class _PipeGuard:
    """sys.stdout or sys.stderr: a write that finds the launcher's pipe closed moves the output (see above)
    and is written again there, instead of raising BrokenPipeError into the model's code or a hook."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            move_output("the launcher's end of the output pipe is closed: output continues here")
            return self._stream.write(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            move_output("the launcher's end of the output pipe is closed: output continues here")

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # encoding, errors, buffer, ...


def guard_stdout() -> None:
    sys.stdout, sys.stderr = _PipeGuard(sys.stdout), _PipeGuard(sys.stderr)


def watch_parent(grace_secs: float, own_log: Optional[str] = None, task: str = "this task",
                 poll_secs: float = 0.5) -> None:
    """If the launcher that started us (named in the environment) dies, log why to `own_log` and stop as on
    SIGTERM; `grace_secs` later, die."""
    global _log_path
    expected = os.environ.get(task_env.PARENT_PID)
    if not expected:
        return  # not started by a launcher on this machine (Kubeflow, by hand): nothing to watch
    _log_path = own_log
    guard_stdout()

    def watch() -> None:
        # The launcher may already be gone: it can die while this process is still importing.
        while os.getppid() == int(expected):
            time.sleep(poll_secs)
        launcher = os.environ.get(task_env.LAUNCHER_PID, expected)  # a forked task's parent is its warm process
        why = (f"{task}: the launcher (pid {launcher}) is gone: stopping as if preempted "
               f"(as on SIGTERM; killed after {grace_secs:.0f} s)")
        move_output(why)
        logging.error("%s", why)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_secs)
        logging.error("%s: still running %.0f s after its launcher died: exiting", task, grace_secs)
        os._exit(128 + signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
