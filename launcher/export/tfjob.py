"""A spec as a Kubeflow TFJob (`kubeflow.org/v1`), for clusters that the training operator runs.

The operator injects TF_CONFIG into every pod, so the task command carries no identity or cluster flags
(`task_command.command` carries none); the spec's host names are dropped, the operator names the pods.
"""

from __future__ import annotations

import posixpath
import re
from typing import Optional

from launcher.cluster import gpus as gpus_lib
from launcher.cluster import model_dir as model_dir_rules
from launcher.cluster import task_command
from launcher.cluster.errors import UserError
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
# Once the job has finished, stop what still runs. The ps tasks exit by themselves once the chief has saved
# the final checkpoint and the evaluator once it has scored it, so this is only a safety net (a ps whose
# message from the chief was lost waits `--ps_orphan_secs` before it gives up).
CLEAN_POD_POLICY = "Running"
# The device plugin's resource name: a container gets exactly the GPUs of its limit.
GPU_RESOURCE = "nvidia.com/gpu"
# The volume that holds a path model directory: a PersistentVolumeClaim, mounted at that path in every pod.
VOLUME_NAME = "model-dir"
# Kubernetes object names (a claim's name) are DNS-1123 subdomains.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_storage(model_dir: str, pvc: Optional[str]) -> None:
    """Every pod must see the model directory: a path needs a claim mounted there, a URL needs none."""
    if model_dir_rules.url_scheme(model_dir) is not None:
        model_dir_rules.check_for_tasks(model_dir)
        if pvc is not None:
            raise UserError(f"--pvc {pvc!r}: the model directory {model_dir!r} is a URL, which the tasks "
                            f"read themselves; a claim is mounted only for a path model directory")
        return
    if pvc is None:
        raise UserError(f"--model_dir {model_dir!r} is a path in the pods, but nothing would be mounted there: "
                        f"give --pvc CLAIM (a PersistentVolumeClaim that every pod mounts at the model "
                        f"directory) or a {', '.join(s + '://' for s in model_dir_rules.TASK_URL_SCHEMES)} "
                        f"model directory")
    if not posixpath.isabs(model_dir):
        raise UserError(f"--model_dir {model_dir!r}: the claim is mounted at the model directory, which must "
                        f"be an absolute path in the pods")
    if len(pvc) > 253 or not _DNS_SUBDOMAIN.match(pvc):
        raise UserError(f"--pvc {pvc!r} is not a Kubernetes object name (lower-case letters, digits, '-', '.')")


def manifest(config: RunConfig, image: str, name: str = "launcher",
             namespace: Optional[str] = None, pvc: Optional[str] = None) -> dict:
    """The TFJob that runs `config` in pods of `image`; one replica type per role of the spec.

    `pvc`: a PersistentVolumeClaim mounted at the model directory in every pod (required for a path model
    directory; a gs://, s3:// or hdfs:// one is read by the tasks themselves). UserError if the pods would
    not share the model directory.
    """
    check_storage(config.model_dir, pvc)
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            # The tasks keep no worker list of their own (membership travels with each session, see
            # docs/elastic.md): the operator may add and remove Worker pods of a running job.
            "enableDynamicWorker": True,
            "runPolicy": {"cleanPodPolicy": CLEAN_POD_POLICY, "backoffLimit": backoff_limit(config)},
            "tfReplicaSpecs": {replica_type: replica_spec(config, job, image, pvc)
                               for job, replica_type in REPLICA_TYPES.items() if config.spec.count(job)},
        },
    }


def replica_spec(config: RunConfig, job: str, image: str, pvc: Optional[str] = None) -> dict:
    """One role's replicas: as many pods as the spec has tasks of `job`, all running the same command."""
    pod: dict = {"containers": [container(config, job, image, pvc)]}
    if pvc is not None:
        pod["volumes"] = [{"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": pvc}}]
    return {
        "replicas": config.spec.count(job),
        "restartPolicy": RESTART_POLICY,
        "template": {"spec": pod},
    }


def container(config: RunConfig, job: str, image: str, pvc: Optional[str] = None) -> dict:
    """The task container. `model_dir` goes in as the user gave it: the claim is mounted at that very path,
    so the chief's checkpoints and the evaluator's reads meet on the same storage in every pod."""
    spec = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": task_command.command(config, job, python="python", model_dir=str(config.model_dir)),
        "env": [{"name": name, "value": value} for name, value in TASK_ENV.items()],
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
    }
    gpus = gpus_lib.count_for(job, config.gpus_per_task, config.evaluator_gpus)
    if gpus:
        spec["resources"] = {"limits": {GPU_RESOURCE: gpus}}
    elif job == PS and gpus_lib.in_use(config.gpus_per_task, config.evaluator_gpus):
        # Some node runtimes show every GPU to a container that asked for none: a ps must not use them.
        spec["env"].extend({"name": k, "value": v} for k, v in gpus_lib.NONE.items())
    if pvc is not None:
        spec["volumeMounts"] = [{"name": VOLUME_NAME, "mountPath": str(config.model_dir)}]
    return spec


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
