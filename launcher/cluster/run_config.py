"""What one run is: the resolved spec, where it writes, how far it trains and how it is supervised."""

from __future__ import annotations

import dataclasses

from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import ClusterSpec

DEFAULT_MODEL = "launcher.models.linear"
DEFAULT_MODEL_DIR = "runs/default"
DEFAULT_TRAIN_STEPS = 1000
DEFAULT_MAX_RESTARTS = 3
DEFAULT_GRACE_SECS = 30.0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    spec: ClusterSpec
    model_dir: str  # a string, not a Path: "gs://bucket/run" must survive
    train_steps: int = DEFAULT_TRAIN_STEPS
    model: str = DEFAULT_MODEL
    # Restarts allowed per task for retryable failures (a task killed by a signal).
    max_restarts: int = DEFAULT_MAX_RESTARTS
    restart_policy: RestartPolicy = RestartPolicy.EXIT_CODE
    # How long tasks get to save and exit after SIGTERM before they are killed.
    grace_secs: float = DEFAULT_GRACE_SECS
    # Show TensorFlow's start-up notices on the console (they always go to the log files).
    show_tf_logs: bool = False
