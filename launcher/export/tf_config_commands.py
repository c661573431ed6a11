"""A spec as one shell command per task, each with its TF_CONFIG, for hosts that no launcher reaches.

Each task reads its identity and cluster from TF_CONFIG, the same way it does under Kubeflow.
"""

from __future__ import annotations

import shlex

from launcher.cluster import task_command, tf_config
from launcher.cluster.task_env import TASK_ENV
from launcher.cluster.errors import SpecError
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import WORKER, ClusterSpec, TaskId


def tf_config_commands(config: RunConfig) -> list[dict]:
    """For every task: its name, host, TF_CONFIG value, the other environment it needs (`task_env`) and the
    shell command that starts it there with all of it."""
    _check_fixed_ports(config.spec)
    cluster = config.spec.cluster_dict()
    entries = []
    for task in config.spec.tasks():
        value = tf_config.build(cluster, task)
        argv = task_command.command(config, task.job, python="python")
        entries.append({
            "task": task.name,
            "host": config.spec.address(task).host,
            "TF_CONFIG": value,
            "env": dict(TASK_ENV),
            "command": " ".join([*(f"{k}={shlex.quote(v)}" for k, v in TASK_ENV.items()),
                                 f"{tf_config.ENV_VAR}={shlex.quote(value)}", shlex.join(argv)]),
        })
    return entries


NEW_WORKER_ADDRESS = "NEW_HOST:PORT"


def add_worker_note(config: RunConfig) -> str:
    """How to add a worker to the running job on another machine: one more command, whose TF_CONFIG names
    it; the running tasks are told nothing (see docs/elastic.md)."""
    cluster = config.spec.cluster_dict()
    workers = list(cluster.get(WORKER, []))
    task = TaskId(WORKER, len(workers))
    value = tf_config.build({**cluster, WORKER: [*workers, NEW_WORKER_ADDRESS]}, task)
    argv = task_command.command(config, WORKER, python="python")
    command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in TASK_ENV.items()),
                        f"{tf_config.ENV_VAR}={shlex.quote(value)}", shlex.join(argv)])
    return (f"To add a worker while the job runs, on another machine (replace {NEW_WORKER_ADDRESS} with its "
            f"address; one more index for each further worker):\n{command}\n"
            "It joins the running job; nobody else restarts. It leaves after its current step on SIGUSR2.")


def _check_fixed_ports(spec: ClusterSpec) -> None:
    """Port 0 ("pick a free one") is only resolvable on this machine; other hosts need a real port."""
    for task in spec.tasks():
        if spec.address(task).port == 0:
            raise SpecError(spec.source, f"cluster.{task.job}[{task.index}]",
                            "port 0 cannot be picked on a remote host; give a fixed port")
