"""Accelerators: how many GPUs each task gets, and which ones on this machine.

TensorFlow maps the whole memory of every GPU it sees into each process, so two tasks on one machine with
GPUs fail unless each sees only its own devices. The rule, the same for every engine:
- the chief and every worker get `gpus_per_task` GPUs each, the evaluator `evaluator_gpus`;
- a ps gets none (`CUDA_VISIBLE_DEVICES=""`): it holds variables, which its CPU serves;
- every task turns on memory growth (`task_env.TASK_ENV`), so a task that does share a GPU takes only
  what it uses.
With 0 for a role, its tasks' view of the GPUs is left as it is (all of the machine's, memory growth on).

Locally the launcher hands out device ids itself (`assign`); Ray (`num_gpus`), Slurm (`--gpus-per-task`) and
Kubernetes (`nvidia.com/gpu`) hand them out from the counts. No TensorFlow here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Mapping, Optional, Sequence

from launcher.cluster.errors import UserError
from launcher.cluster.spec import CHIEF, EVALUATOR, PS, WORKER, ClusterSpec, TaskId

ENV_VAR = "CUDA_VISIBLE_DEVICES"
NONE: dict[str, str] = {ENV_VAR: ""}  # a task that must not see any GPU
_NVIDIA_SMI_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


def count_for(job: str, gpus_per_task: int, evaluator_gpus: int) -> int:
    """GPUs for one task of `job`."""
    if job in (CHIEF, WORKER):
        return gpus_per_task
    if job == EVALUATOR:
        return evaluator_gpus
    return 0


def in_use(gpus_per_task: int, evaluator_gpus: int) -> bool:
    """Whether the run asks for GPUs at all (then every ps is kept off them explicitly)."""
    return bool(gpus_per_task or evaluator_gpus)


def total(spec: ClusterSpec, gpus_per_task: int, evaluator_gpus: int) -> int:
    return sum(count_for(t.job, gpus_per_task, evaluator_gpus) for t in spec.tasks())


def visible(environ: Optional[Mapping[str, str]] = None,
            nvidia_smi: Optional[str] = None) -> tuple[list[str], str]:
    """This machine's GPUs as (device ids, where they were found): CUDA_VISIBLE_DEVICES when it is set
    (ids or UUIDs, as the user wrote them), else the GPUs `nvidia-smi -L` lists; none without nvidia-smi."""
    environ = os.environ if environ is None else environ
    if ENV_VAR in environ:
        ids = [d.strip() for d in environ[ENV_VAR].split(",") if d.strip()]
        # CUDA stops at the first invalid entry ("-1" is the usual way to hide every GPU).
        valid = []
        for d in ids:
            if d.startswith("-"):
                break
            valid.append(d)
        return valid, f"{ENV_VAR}={environ[ENV_VAR]}"
    smi = nvidia_smi or shutil.which("nvidia-smi")
    if not smi:
        return [], "no nvidia-smi on this machine"
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], f"nvidia-smi -L failed ({e})"
    if done.returncode != 0:
        return [], f"nvidia-smi -L failed ({(done.stderr or done.stdout).strip()[:200]})"
    return _NVIDIA_SMI_LINE.findall(done.stdout), "nvidia-smi -L"


def assign(spec: ClusterSpec, gpus_per_task: int, evaluator_gpus: int, devices: Sequence[str],
           where: str) -> dict[TaskId, dict[str, str]]:
    """Each task's GPU environment on one machine holding `devices`: disjoint sets for the tasks that ask
    for GPUs (in spec order: chief, workers, evaluator), none for a ps; tasks of a role with 0 are absent
    (their view is left alone). A task keeps its set for the whole run, restarts included.

    Raises UserError, before anything starts, when `devices` are too few."""
    if not in_use(gpus_per_task, evaluator_gpus):
        return {}
    need = total(spec, gpus_per_task, evaluator_gpus)
    if need > len(devices):
        asking = [f"{spec.count(job)} {job}{'s' if spec.count(job) != 1 else ''} x {n}"
                  for job in (CHIEF, WORKER, EVALUATOR)
                  if spec.count(job) and (n := count_for(job, gpus_per_task, evaluator_gpus))]
        raise UserError(f"--gpus_per_task {gpus_per_task}"
                        + (f", --evaluator_gpus {evaluator_gpus}" if evaluator_gpus else "")
                        + f": {need} GPU{'s' if need != 1 else ''} needed ({' + '.join(asking)}), "
                          f"{len(devices)} on this machine ({where})")
    envs: dict[TaskId, dict[str, str]] = {}
    free = list(devices)
    for task in spec.tasks():
        if task.job == PS:
            envs[task] = dict(NONE)
            continue
        n = count_for(task.job, gpus_per_task, evaluator_gpus)
        if n:
            envs[task] = {ENV_VAR: ",".join(free[:n])}
            del free[:n]
    return envs

