"""One run of the launcher, from a checked config to the run record: what `launcher run` does.

Everything that can be wrong with the input is found before the first task starts (or the model directory
is created): a bad spec, flag, model module or directory costs nothing and changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import tempfile
from typing import Mapping, Optional, Sequence

from launcher.launch import backends, model_dir_lock, run_record
from launcher.cluster import checkpoint_names, task_command, tf_config
from launcher.task import flag_check
from launcher.launch.console import Console
from launcher.cluster.errors import UserError
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import ClusterSpec, TaskId
from launcher.launch.supervisor import Outcome, Supervisor
from launcher.task.task_signals import parent_env
from launcher.launch.task_output import TaskOutput


def check_model_dir(model_dir: str) -> None:
    """The model directory, or the nearest existing parent that would hold it, must be writable."""
    if "://" in model_dir:
        return  # remote storage (gs://, s3://): the tasks' own filesystem layer will say
    path = os.path.abspath(model_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise UserError(f"--model_dir {model_dir!r}: {path} is not a directory")
    try:  # a real write: permissions alone don't tell (root, read-only mounts)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"--model_dir {model_dir!r}: {path} is not writable ({e.strerror})") from None


def _count(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"--{name} {value!r} is not {'a positive' if least else 'a non-negative'} integer")
    return value


def prepare(spec: ClusterSpec, model_dir: str, train_steps: object, model: str,
            role_flags: Mapping[str, Sequence[str]], backend: backends.Backend, *, max_restarts: object,
            restart_policy: str, grace_secs: object, show_tf_logs: bool) -> RunConfig:
    """Check every input and resolve the spec's addresses; raises UserError before anything is started."""
    train_steps = _count("train_steps", train_steps, 1)
    max_restarts = _count("max_restarts", max_restarts, 0)
    try:
        policy = RestartPolicy(restart_policy)
    except ValueError:
        raise UserError(f"--restart_policy {restart_policy!r}: expected one of "
                        f"{', '.join(p.value for p in RestartPolicy)}") from None
    if isinstance(grace_secs, bool) or not isinstance(grace_secs, (int, float)) or grace_secs < 0:
        raise UserError(f"--grace_secs {grace_secs!r} is not a non-negative number of seconds")
    check_model_dir(model_dir)
    resolved = backend.resolve(spec.with_flags(role_flags))
    flag_check.check(model, {spec.source: spec.flags, **{f"--{role}_flags": {role: list(values)}
                                                         for role, values in role_flags.items() if values}})
    return RunConfig(spec=resolved, model_dir=model_dir, train_steps=train_steps, model=model,
                     max_restarts=max_restarts, restart_policy=policy, grace_secs=float(grace_secs),
                     show_tf_logs=show_tf_logs)


def task_env(config: RunConfig, task: TaskId) -> dict[str, str]:
    env = dict(os.environ)
    env.update(parent_env())
    env[tf_config.ENV_VAR] = tf_config.build(config.spec.cluster_dict(), task)
    env["PYTHONUNBUFFERED"] = "1"  # status lines and errors must arrive as they happen
    if not config.show_tf_logs:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


def execute(config: RunConfig, backend: backends.Backend, console: Optional[Console] = None,
            launched: Optional[float] = None) -> Outcome:
    """Run the cluster of `config` to its end and append the run to `run.json`.

    `launched`: when the user started the launcher (epoch seconds), from which run.json counts the
    seconds to each task's first step; its own checks and TensorFlow import are part of that wait.
    """
    console = console or Console()
    os.makedirs(config.model_dir, exist_ok=True)
    try:
        with model_dir_lock.held(config.model_dir):
            return _execute(config, backend, console, launched)
    finally:
        backend.close()


def _execute(config: RunConfig, backend: backends.Backend, console: Console, launched: Optional[float]) -> Outcome:
    started = datetime.datetime.now(datetime.timezone.utc)
    start_step = checkpoint_names.newest_step(config.model_dir)

    def make_output(task: TaskId, on_status) -> TaskOutput:
        return TaskOutput(task, config.model_dir, console, on_status, config.show_tf_logs)

    supervisor = Supervisor(
        config.spec, backend, console,
        command=lambda task: task_command.command(config, task.job, task),
        env=lambda task: task_env(config, task), make_output=make_output,
        train_steps=config.train_steps, policy=config.restart_policy, max_restarts=config.max_restarts,
        grace_secs=config.grace_secs, launched=launched)
    outcome = None
    try:
        outcome = supervisor.run()
        if outcome.exit_code > 128:
            step = checkpoint_names.newest_step(config.model_dir)
            outcome = dataclasses.replace(outcome, summary=f"{outcome.summary}; newest checkpoint at step {step}: "
                                                           "run the same command again to resume")
    finally:
        evaluation = _eval_record(supervisor)
        run_record.append(config.model_dir, {
            "started": started.isoformat(timespec="seconds"),
            "ended": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "outcome": outcome.name if outcome else "crashed",
            "exit_code": outcome.exit_code if outcome else None,
            "summary": outcome.summary if outcome else None,
            "spec": config.spec.to_json(),
            "model": config.model, "train_steps": config.train_steps,
            "global_step_start": start_step,
            "global_step_end": checkpoint_names.newest_step(config.model_dir),
            "tasks": [state.record(supervisor.launched) for state in supervisor.states.values()],
            **({"eval": evaluation} if evaluation else {}),
        })
    return outcome


def _eval_record(supervisor: Supervisor) -> Optional[dict]:
    for state in supervisor.states.values():
        if state.eval_metrics is not None:
            return {"step": state.eval_step, "metrics": state.eval_metrics}
    return None
