"""A task whose launcher is gone stops by itself: SIGKILL leaves a launcher no chance to stop its tasks."""

from __future__ import annotations

import os
import signal
import threading
import time

from absl import logging

from launcher.cluster import task_env


def watch_parent(grace_secs: float, poll_secs: float = 0.5) -> None:
    """If the launcher that started us (named in the environment) dies, stop; after `grace_secs`, die."""
    expected = os.environ.get(task_env.PARENT_PID)
    if not expected:
        return  # not started by a launcher on this machine (Kubeflow, by hand): nothing to watch

    def watch() -> None:
        # The launcher may already be gone: it can die while this process is still importing.
        while os.getppid() == int(expected):
            time.sleep(poll_secs)
        logging.error("launcher (pid %s) is gone: stopping", expected)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_secs)
        os._exit(128 + signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
