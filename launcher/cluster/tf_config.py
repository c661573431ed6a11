"""TF_CONFIG, TensorFlow's standard way of telling a process which cluster it is in and who it is.

It is the one carrier of a task's cluster and identity: the launcher sets it for every task, and the task
program reads both from it alone, so the same program runs under any engine that injects TF_CONFIG
(Kubeflow's operator does).
"""

from __future__ import annotations

import json
from typing import Mapping, Optional

from launcher.cluster.errors import UserError
from launcher.cluster.spec import TRAINING_JOBS, TaskId

ENV_VAR = "TF_CONFIG"


def build(cluster: Mapping[str, list[str]], task: TaskId) -> str:
    """The TF_CONFIG value for `task` in `cluster` (a `ClusterSpec.cluster_dict()`)."""
    return json.dumps({
        "cluster": {job: list(addrs) for job, addrs in cluster.items() if job in TRAINING_JOBS},
        "task": {"type": task.job, "index": task.index},
        "environment": "cloud",
    })


def parse(value: Optional[str]) -> tuple[Optional[dict], Optional[TaskId]]:
    """(cluster, task) from a TF_CONFIG value; None for each part it does not hold."""
    if not value:
        return None, None
    try:
        config = json.loads(value)
    except json.JSONDecodeError as e:
        raise UserError(f"{ENV_VAR}: not valid JSON: {e.msg}") from None
    if not isinstance(config, dict):
        raise UserError(f"{ENV_VAR}: must be a JSON object, got {type(config).__name__}")
    task = config.get("task") or None
    if task is not None and not isinstance(task, dict):
        raise UserError(f"{ENV_VAR}: task must be an object {{\"type\": ..., \"index\": ...}}, got {task!r}")
    task_id = None
    if task is not None:
        job = task.get("type")
        if job == "master":  # TF's older name for the chief
            job = "chief"
        try:
            task_id = TaskId(str(job), int(task.get("index", 0)))
        except (TypeError, ValueError):
            raise UserError(f"{ENV_VAR}: task.index {task.get('index')!r} is not a number") from None
    return config.get("cluster"), task_id


def identity(environ: Mapping[str, str]) -> tuple[TaskId, dict]:
    """Who this task is and which cluster it is in, from TF_CONFIG.

    Raises UserError when TF_CONFIG is missing or names no task of its cluster.
    """
    cluster, task = parse(environ.get(ENV_VAR))
    if cluster is None or task is None:
        raise UserError(f"{ENV_VAR} must give the cluster and this task "
                        '({"cluster": {...}, "task": {"type": ..., "index": ...}})')
    if not isinstance(cluster, dict):
        raise UserError(f"{ENV_VAR}: cluster must be an object of job -> addresses, got {cluster!r}")
    members = cluster.get(task.job, [])
    if task.job != "evaluator" and not 0 <= task.index < len(members):
        raise UserError(f"{ENV_VAR}: task {task} is not in the cluster {json.dumps(cluster)}")
    return task, cluster


def task_of(environ: Mapping[str, str]) -> Optional[TaskId]:
    """The task that a process with this environment runs, or None (any other process, or no TF_CONFIG)."""
    try:
        return parse(environ.get(ENV_VAR))[1]
    except UserError:
        return None
