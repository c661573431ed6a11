"""The command line of the task program, the same for every backend and for exported manifests."""

from __future__ import annotations

import json
import sys
from typing import Optional

from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import TaskId

TASK_MODULE = "launcher.task"


def command(config: RunConfig, job: str, task: Optional[TaskId] = None, *,
            python: str = sys.executable, model_dir: Optional[str] = None) -> list[str]:
    """argv for one task of `job`.

    With `task`, the identity and cluster go in as flags (a launcher-started task); without it the task
    reads both from the TF_CONFIG that its engine injects (Kubeflow). The role's own flags come last, so
    that they win over the launcher's defaults.
    """
    argv = [python, "-m", TASK_MODULE,
            f"--model={config.model}",
            f"--model_dir={model_dir if model_dir is not None else config.model_dir}",
            f"--train_steps={config.train_steps}"]
    if task is not None:
        argv += [f"--job_name={task.job}", f"--task_index={task.index}",
                 f"--cluster_spec={json.dumps(config.spec.cluster_dict(training_only=True))}"]
    return argv + list(config.spec.role_flags(job))
