"""Who must learn a task's new address, when a task moves to another node.

TensorFlow fixes a server's cluster when it starts, so a task that talks to a task that moved must be
restarted with the new TF_CONFIG. The session's device filters (`task.membership.Membership.session_config`) let each
chief and worker see only the ps and the chief, but a ps talks to workers too: it pulls the tensors a
worker's step sends it (gradients) from that worker's server, at the address in the ps's own cluster. So
every training task learns every move; a restarted ps has lost its variables, and the restarted chief
restores them from the newest checkpoint. Found on the host bed: a moved worker whose ps kept the old
address could never train again.

No longer so for the task program: its servers boot under a private identity and each session carries
the cluster (docs/elastic.md, `task.membership`), so a ps pulls from a worker at the address the worker's
own session names, and a moved ps or chief is learnt from `<model_dir>/.cluster.json` without a restart.
This rule stands until the supervisor acts on that (the launcher side of elastic membership).
"""

from __future__ import annotations

from launcher.cluster.spec import TRAINING_JOBS, TaskId


def must_learn(moved: TaskId, task: TaskId) -> bool:
    """Whether `task` must restart to learn the new address of `moved`."""
    return task != moved and moved.job in TRAINING_JOBS and task.job in TRAINING_JOBS
