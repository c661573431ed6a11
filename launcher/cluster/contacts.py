"""Who connects to whom in a running cluster, which decides who must learn a task's new address.

TensorFlow fixes a server's cluster when it starts, so a task that connects to a task that moved must be
restarted with the new TF_CONFIG. The session's device filters (`task.training.session_config`) let each
chief and worker see only the ps and the chief; a ps connects to nobody, and nobody connects to a worker,
so a moved worker disturbs no one.
"""

from __future__ import annotations

from launcher.cluster.spec import CHIEF, PS, WORKER, TaskId

CONNECTED_TO = (PS, CHIEF)  # jobs that others connect to
CONNECTING = (CHIEF, WORKER)  # jobs whose sessions connect to them


def must_learn(moved: TaskId, task: TaskId) -> bool:
    """Whether `task` must restart to learn the new address of `moved`."""
    return task != moved and moved.job in CONNECTED_TO and task.job in CONNECTING
