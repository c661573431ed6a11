"""The command line of the task program, the same for every backend and for exported manifests.

It carries what every task of a run shares (model, model directory, target step) and then the role's own
flags, last, so that they win. The task's identity and cluster are not on it: they travel in TF_CONFIG.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Optional

from launcher.cluster import settings
from launcher.cluster.errors import UserError
from launcher.cluster.spec import CHIEF, EVALUATOR

if TYPE_CHECKING:
    from launcher.cluster.run_config import RunConfig
    from launcher.cluster.spec import ClusterSpec

TASK_MODULE = "launcher.task"
# Set from the launcher's own options for every task: a per-role value would split the cluster's view of
# the run (one task training to another target, or into another directory).
LAUNCHER_OWNED = tuple(field.name for group in (settings.Training, settings.Sync)
                       for field in dataclasses.fields(group))


def check_role_flags(spec: ClusterSpec) -> None:
    """Refuse a per-role flag that the launcher sets itself; the tasks check the rest (see task.flag_check)."""
    for _, where, value in spec.role_flags_with_origins():
        name = value[2:].split("=", 1)[0]
        if name in LAUNCHER_OWNED:
            raise UserError(f"{where}: {value!r}: --{name} is set by the launcher for every task; "
                            f"give it to `launcher run` instead")


def command(config: RunConfig, job: str, *, python: str = sys.executable,
            model_dir: Optional[str] = None) -> list[str]:
    """argv for one task of `job`."""
    return [python, "-m", TASK_MODULE,
            f"--model={config.model}",
            f"--model_dir={model_dir if model_dir is not None else config.model_dir}",
            f"--train_steps={config.train_steps}",
            *config.task_flags(job),  # launcher options that are this role's flags (the evaluator's)
            # Without an evaluator, the chief exports the final model for serving.
            *(["--export_serving"] if job == CHIEF and not config.spec.count(EVALUATOR) else []),
            *config.spec.role_flags(job)]
