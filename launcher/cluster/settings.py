"""Every option of the launcher, grouped by concern, each default written once, here.

A group is a frozen dataclass whose fields are options. `setting(...)` gives a field its default, its
help, how a value is checked (and normalised: fire hands over what it parsed), which commands take it and,
for an option that is really a task flag, the role whose tasks get it. From these classes come:
- the options, defaults and `--help` of `launcher run` and `launcher export` (`cli`);
- `RunConfig`, one run's settings, checked the same way for `run` and `export` (`run_config`);
- the task command's flags that stand for launcher options (`task_command`);
- the option reference of docs/options.md: `python -m launcher.cluster.settings docs/options.md` rewrites it
  (tests/test_settings.py checks it is current).

Adding an option is one `setting(...)` field in its group; then read it where it is used
(`config.<name>`, or the group: `config.watchdog`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence, Union

from launcher.cluster import metric_rule
from launcher.cluster.errors import UserError
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.spec import CHIEF, EVALUATOR, JOBS, WORKER

RUN, EXPORT = "run", "export"
Flags = Union[str, Sequence[str], None]
Check = Callable[[str, Any], Any]  # (option name, value) -> the value to keep; raises UserError


# -- checks: each takes the option's name, for the one line that refuses a value --

def count(least: int) -> Check:
    def check(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"--{name} {value!r} is not {'a positive' if least else 'a non-negative'} integer")
        return value
    return check


def seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UserError(f"--{name} {value!r} is not a non-negative number of seconds")
    return float(value)


def at_least(least: float, why: str) -> Check:
    def check(name: str, value: object) -> float:
        value = seconds(name, value)
        if value < least:
            raise UserError(f"--{name} {value!r}: {why}")
        return value
    return check


def more_than(bound: float) -> Check:
    def check(name: str, value: object) -> float:
        value = seconds(name, value)
        if value <= bound:
            raise UserError(f"--{name} {value!r}: must be more than {bound:g}")
        return value
    return check


def positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"--{name} {value!r} is not a positive number")
    return float(value)


def optional(check: Check) -> Check:
    """`check`, for an option whose default is None (unset)."""
    return lambda name, value: None if value is None else check(name, value)


def flag(name: str, value: object) -> bool:
    return bool(value)


def module_name(name: str, value: object) -> str:
    if not isinstance(value, str) or not all(p.isidentifier() for p in value.split(".")):
        raise UserError(f"--{name} {value!r} is not a Python module name (such as my_package.my_model)")
    return value


def directory(name: str, value: object) -> str:
    """A string, not a Path: "gs://bucket/run" must survive."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise UserError(f"--{name} {value!r} is not a directory name")
    return value


def metric(name: str, value: object) -> Optional[str]:
    """`METRIC[:min|:max]` (see metric_rule), or unset."""
    try:
        metric_rule.parse(value, name)
    except (ValueError, AttributeError, TypeError):
        raise UserError(f"--{name} {value!r}: expected METRIC, METRIC:min or METRIC:max") from None
    return value or None


def ray_resources(name: str, value: object) -> dict[str, float]:
    """`--ray_resources='{"name": amount}'`: a JSON object (fire may hand it over already parsed)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise UserError(f"--{name} {value!r}: not a JSON object ({e.msg})") from None
    if not isinstance(value, Mapping):
        raise UserError(f"--{name} {value!r}: expected a JSON object such as '{{\"accel\": 1}}'")
    for resource, amount in value.items():
        if not isinstance(resource, str) or not resource or resource == "CPU":
            raise UserError(f"--{name}: {resource!r} is not a custom resource name (CPUs: --ray_cpus_per_task)")
        positive(f"{name} {resource}", amount)
    return {resource: float(amount) for resource, amount in value.items()}


# -- the declaration of one option --

@dataclasses.dataclass(frozen=True)
class Option:
    """What a setting's field carries besides its default."""

    help: str
    check: Optional[Check] = None
    choices: tuple[str, ...] = ()
    commands: tuple[str, ...] = (RUN,)
    task_flag_for: tuple[str, ...] = ()  # roles whose tasks get `--NAME=VALUE` when it is not the default


def setting(default: object, help: str, *, check: Optional[Check] = None, choices: Sequence[str] = (),
            commands: Sequence[str] = (RUN,), task_flag_for: Union[str, Sequence[str]] = ()) -> Any:
    """A field of a settings group: an option with its one default. `task_flag_for`: a role, or roles."""
    roles = (task_flag_for,) if isinstance(task_flag_for, str) else tuple(task_flag_for)
    option = Option(help, check, tuple(choices), tuple(commands), roles)
    return dataclasses.field(default=default, metadata={"option": option})


def _choice_text(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


class Group:
    """A group of settings: checks and normalises every field when made."""

    title: ClassVar[str]
    see: ClassVar[str] = ""  # the docs page that explains the group, for the reference

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            option: Option = field.metadata["option"]
            value = getattr(self, field.name)
            if option.choices and _choice_text(value) not in option.choices:
                raise UserError(f"--{field.name} {value!r}: expected one of {', '.join(option.choices)}")
            if option.check is not None:
                object.__setattr__(self, field.name, option.check(field.name, value))


def group(cls: type) -> type:
    return dataclasses.dataclass(frozen=True)(cls)


# -- the groups, in the order of `--help` and of the reference --

@group
class Cluster(Group):
    title = "Cluster"
    see = "specs.md"
    spec: str = setting("local2.json", "a spec file, or the name of a bundled one (local1, local2, local4).",
                        commands=(RUN, EXPORT))
    chief_flags: Flags = setting(None, 'extra task flags for the chief ("--a=1 --b=2"), after the spec\'s own.')
    worker_flags: Flags = setting(None, "extra task flags for the workers, likewise.")
    ps_flags: Flags = setting(None, "extra task flags for the ps tasks, likewise.")
    evaluator_flags: Flags = setting(None, "extra task flags for the evaluator, likewise.")


@group
class Training(Group):
    title = "Training"
    see = "models.md"
    model_dir: str = setting("runs/default", "checkpoints, summaries, logs/ and run.json go here; a rerun "
                             "resumes from it.", check=directory, commands=(RUN, EXPORT))
    train_steps: int = setting(1000, "the global step to train to.", check=count(1), commands=(RUN, EXPORT))
    model: str = setting("launcher.models.linear", "Python module with build(mode) -> launcher.Model.",
                         check=module_name, commands=(RUN, EXPORT))


@group
class Restarts(Group):
    title = "Restarts"
    see = "operations.md#restarts"
    max_restarts: int = setting(3, "restarts allowed per task.", check=count(0), commands=(RUN, EXPORT))
    restart_policy: RestartPolicy = setting(
        RestartPolicy.EXIT_CODE, "exit_code (restart tasks ended by a signal), on_failure, or never.",
        choices=[p.value for p in RestartPolicy], check=lambda name, value: RestartPolicy(value))


@group
class Stopping(Group):
    title = "Stopping"
    see = "operations.md#preemption-and-checkpoints"
    grace_secs: float = setting(30.0, "how long tasks get to save and exit after SIGTERM before SIGKILL.",
                                check=seconds)
    worker_exit_secs: float = setting(30.0, "once the chief has saved the final checkpoint, how long workers "
                                      "get to end by themselves before they are stopped; once it has reached the target, how long a worker "
                                      "may stay silent.", check=seconds)
    eval_wait_secs: float = setting(120.0, "once training has ended, how long the evaluator gets to score the "
                                    "final checkpoint.", check=seconds, commands=())


@group
class Output(Group):
    title = "Output"
    see = "operations.md#a-run"
    show_tf_logs: bool = setting(False, "show TensorFlow's start-up notices on the console.", check=flag)


@group
class Watchdog(Group):
    title = "Hangs and stragglers"
    see = "operations.md#hangs-who-waits-for-whom"
    # Two minutes: far above any step of a model this launcher trains on CPU, and above a chief's restore
    # of a large checkpoint; below TensorFlow's own waits (which are endless).
    hang_secs: float = setting(120.0, "no global step, or no status from a live task, for this long is a hang.",
                               check=at_least(1, "at least 1 s (tasks report once a second)"))
    on_hang: str = setting("restart", "restart (kill and restart the culprits), abort (stop the run, exit 3) "
                           "or report.", choices=("restart", "abort", "report"))
    straggler_ratio: float = setting(3.0, "a task slower than 1/this of its peers' median step rate is a "
                                     "straggler.", check=more_than(1))


@group
class Evaluator(Group):
    """Options of the evaluator task, passed on as its flags (it has them too: launcher.task.eval_flags)."""

    title = "The evaluator"
    see = "evaluator.md"
    keep_best: Optional[str] = setting(None, "METRIC or METRIC:max: the evaluator keeps the best-scoring "
                                       "checkpoint in MODEL_DIR/best/.", check=metric, task_flag_for=EVALUATOR)
    early_stop: Optional[str] = setting(None, "METRIC or METRIC:max: training ends once PATIENCE evaluations in "
                                        "a row bring no improvement of METRIC.", check=metric,
                                        task_flag_for=EVALUATOR)
    patience: int = setting(5, "evaluations without improvement that end training with --early_stop.",
                            check=count(1), task_flag_for=EVALUATOR)


@group
class Sync(Group):
    """Synchronous training, passed on to the chief and workers as their flags (launcher.task.flags)."""

    title = "Synchronous training"
    see = "sync-training.md"
    sync_replicas: bool = setting(False, "train synchronously: the model's optimizer is wrapped in a "
                                  "SyncReplicasOptimizer.", check=flag, commands=(RUN, EXPORT),
                                  task_flag_for=(CHIEF, WORKER))
    backup_workers: int = setting(0, "with --sync_replicas, each step aggregates the first (chief + workers - "
                                  "this) gradients; the stragglers' are dropped.", check=count(0),
                                  commands=(RUN, EXPORT), task_flag_for=(CHIEF, WORKER))


@group
class Gpus(Group):
    """GPUs of its own for each task that trains or evaluates; a ps never gets any (launcher.cluster.gpus)."""

    title = "GPUs"
    see = "gpus.md"
    gpus_per_task: int = setting(0, "GPUs of its own for the chief and each worker (a ps gets none).",
                                 check=count(0), commands=(RUN, EXPORT))
    evaluator_gpus: int = setting(0, "GPUs of its own for the evaluator.", check=count(0), commands=(RUN, EXPORT))


@group
class Engine(Group):
    title = "Where tasks run"
    see = "engines.md"
    backend: str = setting("local", "where tasks run: local (processes on this machine), ray (a Ray cluster) or "
                           "slurm (job steps of the Slurm allocation the launcher runs in).",
                           choices=("local", "ray", "slurm"))
    isolation: str = setting("auto", "local tasks in a network namespace of the run's own, reachable from "
                             "nowhere else: auto (where possible, else a warning naming the open ports), "
                             "required (else exit 2), off.", choices=("auto", "required", "off"))
    warm_starts: bool = setting(True, "fork every task process (restarts too) from one process per machine that "
                                "has imported TensorFlow and the model once; --nowarm_starts starts each one "
                                "cold (see warm-starts.md).", check=flag)
    warm_base: str = setting("",
                             "the socket of a warm base (python -m launcher.task.warm.base --socket=PATH): "
                             "a process that imported TensorFlow once for every run on this machine and "
                             "forks each local run's warm process; default $LAUNCHER_WARM_BASE (see "
                             "warm-starts.md).")


SPREAD, PACK = "spread", "pack"


@group
class Ray(Group):
    title = "Ray"
    see = "engines.md#on-a-ray-cluster"
    ray_address: Optional[str] = setting(None, "HOST:PORT of a running Ray cluster; without it, a local Ray "
                                         "instance is started and stopped with the run.")
    ray_cpus_per_task: float = setting(1.0, "CPUs each task reserves on Ray (fractions allowed).", check=positive)
    ray_resources: Mapping[str, float] = setting(None, "custom Ray resources each task reserves, as JSON: "
                                                 "'{\"accel\": 1}'.", check=ray_resources)
    ray_placement: str = setting(SPREAD, "spread (training tasks on distinct nodes, ps apart) or pack (fill "
                                 "nodes in turn).", choices=(SPREAD, PACK))


@group
class Export(Group):
    title = "Export"
    see = "engines.md#kubeflow-tfjob-and-tf_config-commands"
    format: str = setting("tfjob", "tfjob (a Kubeflow TFJob, needs --image), tf_config (each task's TF_CONFIG "
                          "and command) or sbatch (a Slurm batch script).", choices=("tfjob", "tf_config", "sbatch"),
                          commands=(EXPORT,))
    image: Optional[str] = setting(None, "(tfjob) the container image of every task.", commands=(EXPORT,))
    name: str = setting("launcher", "(tfjob) the TFJob's name.", commands=(EXPORT,))
    namespace: Optional[str] = setting(None, "(tfjob) its Kubernetes namespace.", commands=(EXPORT,))
    pvc: Optional[str] = setting(None, "(tfjob) a PersistentVolumeClaim that every pod mounts at MODEL_DIR.",
                                 commands=(EXPORT,))
    nodes: Optional[int] = setting(None, "(sbatch) nodes to allocate (default: the spec's distinct hosts; none for "
                                   "a localhost spec).", check=optional(count(1)), commands=(EXPORT,))
    cpus_per_task: int = setting(1, "(sbatch) CPUs of each task's job step.", check=count(1), commands=(EXPORT,))
    warning_secs: int = setting(120, "(sbatch) Slurm's SIGTERM to the launcher this long before the time limit.",
                                check=count(1), commands=(EXPORT,))
    time_limit: Optional[str] = setting(None, "(sbatch) the job's time limit, in Slurm's format (MINUTES, H:M:S, "
                                        "D-H:M).", commands=(EXPORT,))


GROUPS: tuple[type, ...] = (Cluster, Training, Restarts, Stopping, Output, Watchdog, Evaluator, Sync, Gpus, Engine, Ray,
                             Export)
# The groups a RunConfig holds, by attribute name (the cluster options become its spec).
RUN_GROUPS: dict[str, type] = {"training": Training, "restarts": Restarts, "stopping": Stopping,
                               "output": Output, "watchdog": Watchdog, "evaluator": Evaluator, "sync": Sync, "gpus": Gpus,
                               "engine": Engine, "ray": Ray}
ROLE_FLAGS = {job: f"{job}_flags" for job in JOBS}
EXPORT_OPTIONS = tuple(f.name for f in dataclasses.fields(Export))


@dataclasses.dataclass(frozen=True)
class Declared:
    """One option as declared: its group, name, default and Option."""

    group: type
    name: str
    default: object
    option: Option


def declared(command: Optional[str] = None) -> list[Declared]:
    """Every option (of `command`, if given), in declaration order."""
    return [Declared(g, f.name, f.default, f.metadata["option"]) for g in GROUPS for f in dataclasses.fields(g)
            if command is None or command in f.metadata["option"].commands]


_BY_NAME = {d.name: d for d in declared()}
GROUP_OF: dict[str, str] = {d.name: attr for attr, g in RUN_GROUPS.items() for d in declared() if d.group is g}


def default(name: str) -> Any:
    return _BY_NAME[name].default


def default_text(value: object) -> str:
    """A default as the reference shows it: `30`, `exit_code`, unset, off."""
    if value is None:
        return "unset"
    if value is False:
        return "off"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{_choice_text(value)}`"


def task_flags(groups: Sequence[Group], role: str) -> list[str]:
    """`--NAME=VALUE` for each option that `role`'s tasks get as a flag and that differs from its default
    (the task's own flag has the same default: see launcher.task.eval_flags)."""
    return [_flag(f.name, getattr(values, f.name)) for values in groups for f in dataclasses.fields(values)
            if role in f.metadata["option"].task_flag_for and getattr(values, f.name) != f.default]


def _flag(name: str, value: object) -> str:
    """An absl flag: a boolean as `--name` / `--noname`, anything else as `--name=value`."""
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no{name}"
    return f"--{name}={value}"


def reference() -> str:
    """The option reference of docs/options.md: a table per group, every option with its default."""
    parts = []
    for g in GROUPS:
        rows = [d for d in declared() if d.group is g and d.option.commands]
        if not rows:
            continue
        commands = sorted({c for d in rows for c in d.option.commands}, key=[RUN, EXPORT].index)
        parts += [f"### {g.title}", "",
                  f"Options of `launcher {'` and `launcher '.join(commands)}`"
                  + (f"; see [{g.title}]({g.see})." if g.see else "."), "",
                  "| option | default | meaning |", "| --- | --- | --- |"]
        for d in rows:
            only = "" if set(d.option.commands) == set(commands) else f"(`{'`, `'.join(d.option.commands)}` only) "
            meaning = d.option.help.replace("|", "\\|")
            parts.append(f"| `--{d.name}` | {default_text(d.default)} | {only}{meaning} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"


def with_reference(page: str) -> str:
    """`page` (docs/options.md) with the reference between its BEGIN and END markers made anew."""
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{reference()}{END}{tail}"


if __name__ == "__main__":  # python -m launcher.cluster.settings docs/options.md: rewrite its reference
    import sys

    for path in sys.argv[1:]:
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(with_reference(text))
