"""What one run is: the resolved spec, where it writes, how far it trains and how it is supervised.

Every default of a run is defined here, and a RunConfig checks itself, so `launcher run` and
`launcher export` refuse the same bad values with the same words.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Mapping, Optional, Union

from launcher.cluster import metric_rule, task_command
from launcher.cluster.errors import UserError
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import EVALUATOR, ClusterSpec

DEFAULT_SPEC = "local2.json"
DEFAULT_MODEL = "launcher.models.linear"
DEFAULT_MODEL_DIR = "runs/default"
DEFAULT_TRAIN_STEPS = 1000
DEFAULT_MAX_RESTARTS = 3
DEFAULT_GRACE_SECS = 30.0
DEFAULT_WORKER_EXIT_SECS = 30.0
# No progress for this long is a hang. Two minutes: far above any step of a model this launcher trains on
# CPU, and above a chief's restore of a large checkpoint; below TensorFlow's own waits (which are endless).
DEFAULT_HANG_SECS = 120.0
ON_HANG = ("restart", "abort", "report")
DEFAULT_ON_HANG = "restart"
DEFAULT_STRAGGLER_RATIO = 3.0
DEFAULT_PATIENCE = 5
DEFAULT_RAY_CPUS_PER_TASK = 1.0
DEFAULT_RAY_PLACEMENT = "spread"
RAY_PLACEMENTS = ("spread", "pack")


def count(name: str, value: object, least: int) -> int:
    """`value` as an integer of at least `least`, or a UserError naming the option `--name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"--{name} {value!r} is not {'a positive' if least else 'a non-negative'} integer")
    return value


def seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UserError(f"--{name} {value!r} is not a non-negative number of seconds")
    return float(value)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"--{name} {value!r} is not a positive number")
    return float(value)


def _resources(value: object) -> dict[str, float]:
    """`--ray_resources='{"name": amount}'`: a JSON object (fire may hand it over already parsed)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise UserError(f"--ray_resources {value!r}: not a JSON object ({e.msg})") from None
    if not isinstance(value, Mapping):
        raise UserError(f"--ray_resources {value!r}: expected a JSON object such as '{{\"accel\": 1}}'")
    for name, amount in value.items():
        if not isinstance(name, str) or not name or name == "CPU":
            raise UserError(f"--ray_resources: {name!r} is not a custom resource name (CPUs: --ray_cpus_per_task)")
        _positive(f"ray_resources {name}", amount)
    return {name: float(amount) for name, amount in value.items()}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    spec: ClusterSpec
    model_dir: str = DEFAULT_MODEL_DIR  # a string, not a Path: "gs://bucket/run" must survive
    train_steps: int = DEFAULT_TRAIN_STEPS
    model: str = DEFAULT_MODEL
    # Restarts allowed per task for retryable failures (a task killed by a signal).
    max_restarts: int = DEFAULT_MAX_RESTARTS
    restart_policy: Union[RestartPolicy, str] = RestartPolicy.EXIT_CODE
    # How long tasks get to save and exit after SIGTERM before they are killed.
    grace_secs: float = DEFAULT_GRACE_SECS
    # Once the chief has saved the final checkpoint, how long workers get to end by themselves.
    worker_exit_secs: float = DEFAULT_WORKER_EXIT_SECS
    # Show TensorFlow's start-up notices on the console (they always go to the log files).
    show_tf_logs: bool = False
    # The watchdog: how long without progress is a hang, and what to do about it (see launch/watchdog.py).
    hang_secs: float = DEFAULT_HANG_SECS
    on_hang: str = DEFAULT_ON_HANG
    # A task stepping slower than 1/straggler_ratio of its peers' median is named a straggler.
    straggler_ratio: float = DEFAULT_STRAGGLER_RATIO
    # Evaluator options, passed on as its task flags: `METRIC[:min|:max]` rules (see metric_rule).
    keep_best: Optional[str] = None
    early_stop: Optional[str] = None
    patience: int = DEFAULT_PATIENCE
    # On Ray: what each task reserves (CPUs, fractions allowed; custom resources by name), and how tasks
    # are laid out over nodes (spread: training tasks on distinct nodes, ps apart; pack: fill nodes in turn).
    ray_cpus_per_task: float = DEFAULT_RAY_CPUS_PER_TASK
    ray_resources: Union[Mapping[str, float], str, None] = None
    ray_placement: str = DEFAULT_RAY_PLACEMENT
    # GPUs for each chief and worker, and for the evaluator; a ps never gets any (see `gpus`).
    gpus_per_task: int = 0
    evaluator_gpus: int = 0

    def __post_init__(self) -> None:
        def set_(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        set_("train_steps", count("train_steps", self.train_steps, 1))
        set_("max_restarts", count("max_restarts", self.max_restarts, 0))
        set_("grace_secs", seconds("grace_secs", self.grace_secs))
        set_("worker_exit_secs", seconds("worker_exit_secs", self.worker_exit_secs))
        set_("hang_secs", seconds("hang_secs", self.hang_secs))
        if self.hang_secs < 1:
            raise UserError(f"--hang_secs {self.hang_secs!r}: at least 1 s (tasks report once a second)")
        if self.on_hang not in ON_HANG:
            raise UserError(f"--on_hang {self.on_hang!r}: expected one of {', '.join(ON_HANG)}")
        set_("straggler_ratio", seconds("straggler_ratio", self.straggler_ratio))
        if self.straggler_ratio <= 1:
            raise UserError(f"--straggler_ratio {self.straggler_ratio!r}: must be more than 1")
        try:
            set_("restart_policy", RestartPolicy(self.restart_policy))
        except ValueError:
            raise UserError(f"--restart_policy {self.restart_policy!r}: expected one of "
                            f"{', '.join(p.value for p in RestartPolicy)}") from None
        if not isinstance(self.model, str) or not all(p.isidentifier() for p in self.model.split(".")):
            raise UserError(f"--model {self.model!r} is not a Python module name (such as my_package.my_model)")
        if isinstance(self.model_dir, os.PathLike):
            set_("model_dir", os.fspath(self.model_dir))
        if not isinstance(self.model_dir, str) or not self.model_dir:
            raise UserError(f"--model_dir {self.model_dir!r} is not a directory name")
        set_("show_tf_logs", bool(self.show_tf_logs))
        set_("patience", count("patience", self.patience, 1))
        for option in ("keep_best", "early_stop"):
            value = getattr(self, option)
            try:
                metric_rule.parse(value, option)
            except (ValueError, AttributeError, TypeError):
                raise UserError(f"--{option} {value!r}: expected METRIC, METRIC:min or METRIC:max") from None
            if value and not self.spec.count(EVALUATOR):
                raise UserError(f"--{option} needs an evaluator, and the spec {self.spec.source} has none "
                                f'(add "evaluator": ["localhost:0"] to its cluster)')
        set_("ray_cpus_per_task", _positive("ray_cpus_per_task", self.ray_cpus_per_task))
        set_("ray_resources", _resources(self.ray_resources))
        if self.ray_placement not in RAY_PLACEMENTS:
            raise UserError(f"--ray_placement {self.ray_placement!r}: expected one of {', '.join(RAY_PLACEMENTS)}")
        set_("gpus_per_task", count("gpus_per_task", self.gpus_per_task, 0))
        set_("evaluator_gpus", count("evaluator_gpus", self.evaluator_gpus, 0))
        if self.evaluator_gpus and not self.spec.count(EVALUATOR):
            raise UserError(f"--evaluator_gpus needs an evaluator, and the spec {self.spec.source} has none")
        task_command.check_role_flags(self.spec)

    def evaluator_flags(self) -> list[str]:
        """The evaluator's task flags that stand for launcher options."""
        return [*([f"--keep_best={self.keep_best}"] if self.keep_best else []),
                *([f"--early_stop={self.early_stop}", f"--patience={self.patience}"] if self.early_stop else [])]
