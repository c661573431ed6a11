"""A spec as a Kubeflow TFJob (`kubeflow.org/v1`), for clusters that the training operator runs.

The operator injects TF_CONFIG into every pod, so the task command carries no identity or cluster flags
(`task_command.command` carries none); the spec's host names are dropped, the operator names the pods.
"""

from __future__ import annotations

from typing import Optional

from launcher.cluster import task_command
from launcher.cluster.task_env import TASK_ENV
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import CHIEF, EVALUATOR, PS, WORKER

API_VERSION = "kubeflow.org/v1"
KIND = "TFJob"
# Kubeflow's replica type for each launcher job, in the order the manifest lists them.
REPLICA_TYPES = {CHIEF: "Chief", WORKER: "Worker", PS: "PS", EVALUATOR: "Evaluator"}
# The operator finds the TF port by this container port name; 2222 is its default port.
CONTAINER_NAME = "tensorflow"
PORT_NAME = "tfjob-port"
PORT = 2222
# The operator retries exit codes of 128 and above and fails the job on 1-127: the launcher's own contract.
RESTART_POLICY = "ExitCode"
# Stop what still runs once the job has finished (an evaluator or PS never exits by itself).
CLEAN_POD_POLICY = "Running"


def manifest(config: RunConfig, image: str, name: str = "launcher",
             namespace: Optional[str] = None) -> dict:
    """The TFJob that runs `config` in pods of `image`; one replica type per role of the spec."""
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "runPolicy": {"cleanPodPolicy": CLEAN_POD_POLICY, "backoffLimit": backoff_limit(config)},
            "tfReplicaSpecs": {replica_type: replica_spec(config, job, image)
                               for job, replica_type in REPLICA_TYPES.items() if config.spec.count(job)},
        },
    }


def replica_spec(config: RunConfig, job: str, image: str) -> dict:
    """One role's replicas: as many pods as the spec has tasks of `job`, all running the same command."""
    return {
        "replicas": config.spec.count(job),
        "restartPolicy": RESTART_POLICY,
        "template": {"spec": {"containers": [container(config, job, image)]}},
    }


def container(config: RunConfig, job: str, image: str) -> dict:
    """The task container. `model_dir` goes in as the user gave it: on Kubernetes it must be shared storage
    that every pod sees (the chief writes checkpoints there, the evaluator reads them)."""
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "command": task_command.command(config, job, python="python", model_dir=str(config.model_dir)),
        "env": [{"name": name, "value": value} for name, value in TASK_ENV.items()],
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
    }


def backoff_limit(config: RunConfig) -> int:
    """The job's restart budget: `max_restarts` for each task, pooled.

    The launcher allows `max_restarts` per task; a TFJob has only one, job-wide `backoffLimit`, so the
    closest budget is the per-task allowance times the number of tasks (under `ExitCode` every replica, the
    evaluator included, can be restarted). The pool is looser than the launcher's rule: one task may use up
    restarts that others did not need.

    Caveat: the training operator's backoff check (`PastBackoffLimit`) sums restarts only of replicas whose
    policy is OnFailure or Always, so with `ExitCode` it may not enforce this limit; it is still set so that
    the budget is stated in the manifest and holds if the policy is changed.
    """
    return config.max_restarts * sum(1 for _ in config.spec.tasks())
