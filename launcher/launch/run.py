"""One run of the launcher, from a checked config to the run record: what `launcher run` does.

The launcher's own input (spec, options, model directory) is checked before the first task starts or the
model directory is created. Per-role flags and the model module are checked by the tasks themselves,
which import TensorFlow and the model anyway; they are gated, so nothing trains or writes a checkpoint
before every task has passed its checks (see `supervisor`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import tempfile
from typing import Optional

from launcher.cluster import checkpoint_names, safe_files, task_command, task_env, tf_config, typed_json
from launcher.cluster import warm_protocol
from launcher.cluster import model_dir as model_dir_rules
from launcher.cluster.errors import UserError
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import ClusterSpec, TaskId
from launcher.cluster.stop_signals import StopRequest
from launcher.launch import backends, model_dir_lock, run_record, scale_requests
from launcher.launch.backends.warm import WarmOptions
from launcher.launch.console import Console
from launcher.launch.run_end import Outcome
from launcher.launch.supervisor import Supervisor
from launcher.launch.task_output import TaskOutput, log_path

# Where running tasks learn the live cluster: task.membership.MEMBERSHIP_FILE (that module imports
# TensorFlow, which the launcher does not; tests/test_scale.py checks the two agree).
MEMBERSHIP_FILE = ".cluster.json"


def check_model_dir(model_dir: str) -> None:
    """The model directory, or the nearest existing parent that would hold it, must be writable."""
    model_dir_rules.check_for_run(model_dir)  # a URL: refused, never a local directory named after it
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


def check_launcher_files(model_dir: str, spec: ClusterSpec) -> None:
    """No symlink where the launcher writes in the model directory: it would write through it to a file
    elsewhere (see `safe_files`). Refused before anything starts; the files are opened without following
    links as well, for a link planted during the run."""
    logs = os.path.dirname(log_path(model_dir, TaskId("chief", 0)))
    for path in (logs, os.path.join(model_dir, model_dir_lock.FILE_NAME), run_record.path(model_dir),
                 os.path.join(model_dir, MEMBERSHIP_FILE),
                 *(log_path(model_dir, task) for task in spec.tasks())):
        safe_files.check_not_link(path)


def publish_cluster(model_dir: str, cluster: dict) -> None:
    """Where running tasks learn the live cluster (`task.membership`): written whole, then renamed."""
    safe_files.write_replacing(os.path.join(model_dir, MEMBERSHIP_FILE),
                               json.dumps({"cluster": cluster}, sort_keys=True))


def prepare(config: RunConfig, backend: backends.Backend) -> RunConfig:
    """Check what the config cannot check alone and resolve the spec's addresses; raises UserError before
    anything is started."""
    check_model_dir(config.model_dir)
    check_launcher_files(config.model_dir, config.spec)
    return dataclasses.replace(config, spec=backend.resolve(config.spec))


def run_env(config: RunConfig) -> dict[str, str]:
    """What every task process of the run has in its environment (and a warm process, which forks them)."""
    env = dict(os.environ)
    env.update({name: env.get(name, value) for name, value in task_env.TASK_ENV.items()})
    env["PYTHONUNBUFFERED"] = "1"  # status lines and errors must arrive as they happen
    if not config.show_tf_logs:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


def task_env_for(config: RunConfig, task: TaskId, spec: Optional[ClusterSpec] = None) -> dict[str, str]:
    """`spec`: the run's spec as it is now, when a task has moved since `config` was made."""
    spec = spec or config.spec
    env = run_env(config)
    env[task_env.PARENT_PID] = str(os.getpid())
    env[task_env.GATED] = "1"
    env[task_env.FLAG_ORIGINS] = json.dumps(spec.flag_origins(task.job))
    env[tf_config.ENV_VAR] = tf_config.build(spec.cluster_dict(), task)
    return env


def warm_options(config: RunConfig) -> Optional[WarmOptions]:
    """What the run's warm processes need, or None when tasks start cold (--nowarm_starts)."""
    if not config.warm_starts:
        return None
    base = config.warm_base or os.environ.get(warm_protocol.BASE_ENV) or None
    return WarmOptions(config.model, run_env(config), base=base)


def execute(config: RunConfig, backend: backends.Backend, stop: StopRequest, console: Optional[Console] = None,
            launched: Optional[float] = None) -> Outcome:
    """Run the cluster of `config` to its end and append the run to `run.json`.

    `launched`: when the user started the launcher (epoch seconds), from which run.json counts the
    seconds to each task's first step; its own checks are part of that wait.
    """
    console = console or Console()
    os.makedirs(config.model_dir, exist_ok=True)
    try:
        with model_dir_lock.held(config.model_dir):
            return _execute(config, backend, stop, console, launched)
    finally:
        backend.close()


def _execute(config: RunConfig, backend: backends.Backend, stop: StopRequest, console: Console,
             launched: Optional[float]) -> Outcome:
    started = datetime.datetime.now(datetime.timezone.utc)
    start_step = checkpoint_names.newest_step(config.model_dir)

    def make_output(task: TaskId, on_status) -> TaskOutput:
        return TaskOutput(task, config.model_dir, console, on_status, config.show_tf_logs)

    supervisor = Supervisor(
        config.spec, backend, console,
        command=lambda task: task_command.command(config, task.job),
        env=lambda task, spec: task_env_for(config, task, spec), make_output=make_output,
        train_steps=config.train_steps, policy=config.restart_policy, max_restarts=config.max_restarts,
        grace_secs=config.grace_secs, worker_exit_secs=config.worker_exit_secs, stop=stop, launched=launched,
        eval_wait_secs=config.eval_wait_secs,
        hang_secs=config.hang_secs, on_hang=config.on_hang, straggler_ratio=config.straggler_ratio,
        publish=lambda cluster: publish_cluster(config.model_dir, cluster),
        requests=scale_requests.Channel(config.model_dir))
    outcome = None
    try:
        outcome = supervisor.run()
        if outcome.exit_code > 128:
            step = checkpoint_names.newest_step(config.model_dir)
            outcome = dataclasses.replace(outcome, summary=f"{outcome.summary}; newest checkpoint at step {step}: "
                                                           "run the same command again to resume")
    finally:
        spec = supervisor.spec.to_json()  # with the addresses tasks moved to
        _append_record(console, config.model_dir, run_record.Run(
            started=started.isoformat(timespec="seconds"),
            ended=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            outcome=outcome.name if outcome else "crashed",
            exit_code=outcome.exit_code if outcome else None,
            summary=outcome.summary if outcome else None,
            spec=run_record.Spec(spec["cluster"], spec["flags"]),
            model=config.model, train_steps=config.train_steps,
            global_step_start=start_step,
            global_step_end=checkpoint_names.newest_step(config.model_dir),
            tasks=[state.record(supervisor.launched) for state in supervisor.states.values()],
            hang_secs=config.hang_secs, on_hang=config.on_hang,
            hangs=_typed(console, run_record.Hang, supervisor.hangs, "hangs"),
            straggler_ratio=config.straggler_ratio,
            stragglers=_typed(console, run_record.Straggler, [s.record() for s in supervisor.stragglers.history],
                              "stragglers"),
            global_step_series=[(round(t, 3), step) for t, step in supervisor.step_series],
            eval=_eval_record(supervisor),
            early_stop=run_record.EarlyStop(supervisor.early_stop.get("evaluated_step"),
                                            supervisor.early_stop.get("reason"),
                                            checkpoint_names.newest_step(config.model_dir))
            if supervisor.early_stop else None,
            membership=_typed(console, run_record.MembershipChange, supervisor.membership, "membership")))
    return outcome


def _append_record(console: Console, model_dir: str, record: run_record.Run) -> None:
    try:
        note = run_record.append(model_dir, record)
    except OSError as e:  # a full disk: the run's outcome still reaches the user, and its exit code
        console.line(f"[launcher] could not write {run_record.path(model_dir)}: {e.strerror}")
    else:
        if note:
            console.line(f"[launcher] {note}")


def _typed(console: Console, kind: type, entries: list[dict], where: str) -> list:
    """The supervisor's `entries` as record types; one that does not fit (a bug of ours) is left out with a
    line on the console rather than costing the whole record."""
    typed = []
    for i, entry in enumerate(entries):
        try:
            typed.append(typed_json.decode(kind, entry, f"{where}[{i}]"))
        except typed_json.DecodeError as e:
            console.line(f"[launcher] left out of {run_record.FILE_NAME}: {e}")
    return typed


def _eval_record(supervisor: Supervisor) -> Optional[run_record.Eval]:
    for state in supervisor.states.values():
        if state.eval_metrics is not None:
            return run_record.Eval(state.eval_step, state.eval_metrics)
    return None
