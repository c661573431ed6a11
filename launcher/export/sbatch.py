"""A spec as a Slurm batch script: `#SBATCH` lines for the allocation, then the launcher with `--backend slurm`.

The launcher runs as the batch script itself (`exec`), so Slurm's warning signal before the time limit
(`--signal=B:TERM@SECS`, sent to the batch shell only) reaches it and ends the run as a preemption: the
chief saves at the step reached, exit 143. `--no-kill` keeps the job when one of its nodes fails: the
launcher moves that node's tasks to the others. Every value that comes from the spec or the command line
is checked or shell-quoted: a spec is data, never script text.
"""

from __future__ import annotations

import re
import shlex
import sys
from typing import Optional

from launcher.cluster import gpus as gpus_lib, settings
from launcher.cluster import model_dir as model_dir_rules
from launcher.cluster.errors import UserError
from launcher.cluster.run_config import RunConfig
from launcher.launch import ports

# Before the time limit: time for the chief's save and an orderly stop (--grace_secs).
DEFAULT_WARNING_SECS = settings.default("warning_secs")
MAX_WARNING_SECS = 65535  # Slurm's limit for --signal's time
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")


def _count(name: str, value: object, least: int, most: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least or (most and value > most):
        raise UserError(f"--{name} {value!r} is not an integer from {least}" + (f" to {most}" if most else " up"))
    return value


def nodes_of(config: RunConfig) -> Optional[int]:
    """The spec's machines: as many nodes as distinct hosts, when it names real ones (a loopback-only spec
    says nothing about machines: Slurm chooses, as the tasks' CPUs need)."""
    hosts = {config.spec.address(t).host for t in config.spec.tasks()}
    if all(ports.is_loopback(h) for h in hosts):
        return None
    return len(hosts)


def script(config: RunConfig, spec_arg: str, *, job_name: str = "launcher", nodes: Optional[int] = None,
           cpus_per_task: int = 1, warning_secs: int = DEFAULT_WARNING_SECS, time_limit: Optional[str] = None,
           python: str = sys.executable) -> str:
    """The batch script that runs `config` with `--backend slurm`; `spec_arg` is the spec as the batch node
    finds it (a bundled name, or a path on storage every node shares)."""
    model_dir_rules.check_for_run(config.model_dir)  # the launcher keeps run.json and logs there: a path
    if not isinstance(job_name, str) or not _JOB_NAME.match(job_name):
        raise UserError(f"--name {job_name!r}: a Slurm job name here is letters, digits, '.', '_', '-' "
                        "(at most 64, starting with a letter or digit)")
    if time_limit is not None and (not isinstance(time_limit, str) or not _TIME.match(time_limit)):
        raise UserError(f"--time_limit {time_limit!r}: expected Slurm's time format (MINUTES, H:M:S, D-H:M)")
    tasks = sum(1 for _ in config.spec.tasks())
    nodes = nodes_of(config) if nodes is None else _count("nodes", nodes, 1)
    if nodes is not None and nodes > tasks:
        raise UserError(f"--nodes {nodes}: more nodes than the spec's {tasks} tasks")
    cpus_per_task = _count("cpus_per_task", cpus_per_task, 1)
    warning_secs = _count("warning_secs", warning_secs, 1, MAX_WARNING_SECS)
    # Every task slot gets the most any task needs: steps of any task can then land on any slot.
    gpus = max(config.gpus_per_task, config.evaluator_gpus)
    sbatch = [f"--job-name={job_name}",
              *([f"--nodes={nodes}"] if nodes else []),
              f"--ntasks={tasks}",
              f"--cpus-per-task={cpus_per_task}",
              *([f"--gpus-per-task={gpus}"] if gpus else []),
              *([f"--time={time_limit}"] if time_limit else []),
              f"--signal=B:TERM@{warning_secs}",
              "--no-kill"]
    run = [python, "-m", "launcher", "run", "--backend", "slurm", "--spec", spec_arg,
           "--model_dir", str(config.model_dir), "--train_steps", str(config.train_steps), "--model", config.model,
           "--max_restarts", str(config.max_restarts),
           *(["--gpus_per_task", str(config.gpus_per_task)] if config.gpus_per_task else []),
           *(["--evaluator_gpus", str(config.evaluator_gpus)] if config.evaluator_gpus else [])]
    return "\n".join([
        "#!/bin/sh",
        *(f"#SBATCH {option}" for option in sbatch),
        "# Made by `launcher export --format sbatch`: the launcher supervises every task as a job step of this",
        "# allocation (--backend slurm). The warning signal before the time limit, and scancel, end the run as",
        "# a preemption: the chief saves a checkpoint at the step it reached, exit 143; submit again to resume.",
        "exec " + shlex.join(run),
        "",
    ])
