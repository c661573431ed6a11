"""The command line: `launcher run` and `launcher export`, a thin layer over `launch.run` and `export`.

User errors end with one line on stderr and exit code 2 (see `exit_codes`); nothing else is printed as a
traceback unless it is a bug of ours. This module runs in the launcher process: no TensorFlow here.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import shlex
import sys
import time
from typing import Optional, Sequence, Union

import fire

from launcher.cluster import exit_codes, run_config, spec as spec_lib
from launcher.cluster.errors import UserError
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.run_config import RunConfig
from launcher.cluster.stop_signals import StopRequest

Flags = Union[str, Sequence[str], None]
# "Seconds from launch" in run.json count from here: the launcher's own checks are part of the wait.
_LAUNCHED = time.time()
_HELP = ("--help", "-h", "--")


def _flag_list(value: Flags) -> list[str]:
    """`--worker_flags="--a=1 --b=2"` or, through fire, a list `["--a=1", "--b=2"]`."""
    if value is None or value == ():
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _fail(error: UserError) -> None:
    sys.stderr.write(f"error: {error}\n")
    sys.exit(error.exit_code)


class Launcher:
    """Distributed training of graph-mode TensorFlow models on a chief/worker/ps cluster."""

    def run(self, spec: str = run_config.DEFAULT_SPEC, model_dir: str = run_config.DEFAULT_MODEL_DIR,
            train_steps: int = run_config.DEFAULT_TRAIN_STEPS, model: str = run_config.DEFAULT_MODEL,
            chief_flags: Flags = None, worker_flags: Flags = None, ps_flags: Flags = None,
            evaluator_flags: Flags = None, max_restarts: int = run_config.DEFAULT_MAX_RESTARTS,
            restart_policy: str = RestartPolicy.EXIT_CODE.value,
            grace_secs: float = run_config.DEFAULT_GRACE_SECS,
            worker_exit_secs: float = run_config.DEFAULT_WORKER_EXIT_SECS, show_tf_logs: bool = False,
            keep_best: Optional[str] = None, early_stop: Optional[str] = None,
            patience: int = run_config.DEFAULT_PATIENCE, backend: str = "local",
            ray_address: Optional[str] = None,
            ray_cpus_per_task: float = run_config.DEFAULT_RAY_CPUS_PER_TASK, ray_resources: Optional[str] = None,
            ray_placement: str = run_config.DEFAULT_RAY_PLACEMENT, isolation: str = "auto",
            gpus_per_task: int = 0, evaluator_gpus: int = 0,
            hang_secs: float = run_config.DEFAULT_HANG_SECS, on_hang: str = run_config.DEFAULT_ON_HANG,
            straggler_ratio: float = run_config.DEFAULT_STRAGGLER_RATIO) -> None:
        """Train MODEL on the cluster of SPEC until the global step reaches TRAIN_STEPS.

        Args:
          spec: a spec file, or the name of a bundled one (local1, local2, local4).
          model_dir: checkpoints, summaries, logs/ and run.json go here; a rerun resumes from it.
          train_steps: the global step to train to.
          model: Python module with build(mode) -> launcher.Model.
          chief_flags: extra task flags for the chief ("--a=1 --b=2"); likewise worker_flags, ps_flags,
            evaluator_flags. They come after the spec's own flags for that role.
          max_restarts: restarts allowed per task.
          restart_policy: exit_code (restart tasks ended by a signal), on_failure, or never.
          grace_secs: how long tasks get to save and exit after SIGTERM before SIGKILL.
          worker_exit_secs: once the chief has saved the final checkpoint, how long workers get to end.
          show_tf_logs: show TensorFlow's start-up notices on the console.
          keep_best: METRIC or METRIC:max: the evaluator keeps the best-scoring checkpoint in MODEL_DIR/best/.
          early_stop: METRIC or METRIC:max: training ends once PATIENCE evaluations in a row bring no
            improvement of METRIC (needs an evaluator in the spec).
          patience: evaluations without improvement that end training with --early_stop.
          backend: where tasks run: local (processes on this machine), ray (a Ray cluster) or slurm (job
            steps of the Slurm allocation the launcher runs in).
          ray_address: HOST:PORT of a running Ray cluster; without it, a local Ray instance is started
            and stopped with the run.
          ray_cpus_per_task: CPUs each task reserves on Ray (fractions allowed).
          ray_resources: custom Ray resources each task reserves, as JSON: '{"accel": 1}'.
          ray_placement: spread (training tasks on distinct nodes, ps apart) or pack (fill nodes in turn).
          isolation: local tasks in a network namespace of the run's own, reachable from nowhere else:
            auto (where possible, else a warning naming the open ports), required (else exit 2), off.
          gpus_per_task: GPUs of its own for the chief and each worker (a ps gets none).
          evaluator_gpus: GPUs of its own for the evaluator.
          hang_secs: no global step, or no status from a live task, for this long is a hang.
          on_hang: restart (kill and restart the culprits), abort (stop the run, exit 3) or report.
          straggler_ratio: a task slower than 1/this of its peers' median step rate is a straggler.
        """
        from launcher.launch import backends, run as run_lib

        # First of all: a stop signal from now on is honoured, and nothing started is left behind.
        stop = StopRequest(armed=True, exit_when_hurried=False).install()
        role_flags = {"chief": _flag_list(chief_flags), "worker": _flag_list(worker_flags),
                      "ps": _flag_list(ps_flags), "evaluator": _flag_list(evaluator_flags)}
        try:
            config = RunConfig(spec=spec_lib.load(str(spec)).with_flags(role_flags), model_dir=str(model_dir),
                               train_steps=train_steps, model=model, max_restarts=max_restarts,
                               restart_policy=restart_policy, grace_secs=grace_secs,
                               worker_exit_secs=worker_exit_secs, show_tf_logs=show_tf_logs,
                               keep_best=keep_best, early_stop=early_stop, patience=patience,
                               ray_cpus_per_task=ray_cpus_per_task, ray_resources=ray_resources,
                               ray_placement=ray_placement, hang_secs=hang_secs,
                               on_hang=on_hang, straggler_ratio=straggler_ratio, gpus_per_task=gpus_per_task,
                               evaluator_gpus=evaluator_gpus)
            run_lib.check_model_dir(config.model_dir)  # before a backend starts anything (Ray starts at once)
            engine = backends.get(backend, address=ray_address, cpus_per_task=config.ray_cpus_per_task,
                                  resources=config.ray_resources, placement=config.ray_placement,
                                  isolation=isolation, gpus_per_task=config.gpus_per_task,
                                  evaluator_gpus=config.evaluator_gpus)
            stop.install()  # again: starting Ray installs a SIGTERM handler of its own in this process
            try:
                config = run_lib.prepare(config, engine)
            except BaseException:
                engine.close()
                raise
            outcome = run_lib.execute(config, engine, stop, launched=_LAUNCHED)
        except UserError as e:
            _fail(e)
        if outcome.exit_code == exit_codes.BAD_INPUT:
            _fail(UserError(outcome.summary))
        stream = sys.stdout if outcome.exit_code == exit_codes.OK else sys.stderr
        stream.write(f"{outcome.name}: {outcome.summary}\n")
        sys.exit(outcome.exit_code)

    def report(self, model_dir: str = run_config.DEFAULT_MODEL_DIR, html: Optional[str] = None) -> None:
        """Summarise MODEL_DIR's run.json on the terminal and write it as an HTML page with a timeline.

        Args:
          model_dir: the model directory whose run.json to read.
          html: where to write the page (default: <model_dir>/report.html); "-" for none.
        """
        from launcher.report import command

        try:
            command.report(str(model_dir), None if html is None else str(html))
        except UserError as e:
            _fail(e)

    def export(self, spec: str = run_config.DEFAULT_SPEC, format: str = "tfjob", image: Optional[str] = None,
               name: str = "launcher", namespace: Optional[str] = None,
               model_dir: str = run_config.DEFAULT_MODEL_DIR, train_steps: int = run_config.DEFAULT_TRAIN_STEPS,
               model: str = run_config.DEFAULT_MODEL, max_restarts: int = run_config.DEFAULT_MAX_RESTARTS,
               pvc: Optional[str] = None, gpus_per_task: int = 0, evaluator_gpus: int = 0,
               nodes: Optional[int] = None, cpus_per_task: int = 1, warning_secs: int = 120,
               time_limit: Optional[str] = None) -> None:
        """Print SPEC for another engine: a Kubeflow TFJob (--format tfjob --image IMAGE), each task's
        TF_CONFIG and command (--format tf_config), or a Slurm batch script that runs the launcher with
        --backend slurm (--format sbatch). A security note on the exposed ports goes to stderr.

        Args:
          model_dir: storage that every task shares: a path (on Kubernetes, with --pvc) or a gs://, s3://,
            hdfs:// URL.
          pvc: (tfjob) a PersistentVolumeClaim that every pod mounts at MODEL_DIR.
          gpus_per_task: GPUs for the chief and each worker (tfjob: nvidia.com/gpu limits; sbatch:
            --gpus-per-task); evaluator_gpus likewise for the evaluator.
          nodes: (sbatch) nodes to allocate (default: the spec's distinct hosts; none for a localhost spec).
          cpus_per_task: (sbatch) CPUs of each task's job step.
          warning_secs: (sbatch) Slurm's SIGTERM to the launcher this long before the time limit.
          time_limit: (sbatch) the job's time limit, in Slurm's format (MINUTES, H:M:S, D-H:M).
        """
        try:
            from launcher.cluster import model_dir as model_dir_rules
            from launcher.export import sbatch, security, tf_config_commands, tfjob

            config = RunConfig(spec=spec_lib.load(str(spec)), model_dir=str(model_dir), train_steps=train_steps,
                               model=model, max_restarts=max_restarts, gpus_per_task=gpus_per_task,
                               evaluator_gpus=evaluator_gpus)
            if format == "tfjob":
                if not image:
                    raise UserError("--image is required with --format tfjob")
                document = tfjob.manifest(config, str(image), name=str(name), namespace=namespace,
                                          pvc=None if pvc is None else str(pvc))
                note = security.note_for_pods(tfjob.PORT)
            elif format == "tf_config":
                if pvc is not None:
                    raise UserError("--pvc is for --format tfjob; TF_CONFIG commands use the model directory "
                                    "as every host sees it")
                model_dir_rules.check_for_tasks(config.model_dir)
                document = tf_config_commands.tf_config_commands(config)
                note = security.note_for_hosts(config.spec)
            elif format == "sbatch":
                if pvc is not None or image is not None:
                    raise UserError("--pvc and --image are for --format tfjob; a batch script runs on the "
                                    "allocation's nodes, which share the model directory")
                spec_arg = str(spec) if spec_lib.is_bundled_name(str(spec)) else os.path.abspath(config.spec.source)
                text = sbatch.script(config, spec_arg, job_name=str(name), nodes=nodes, cpus_per_task=cpus_per_task,
                                     warning_secs=warning_secs, time_limit=None if time_limit is None else str(time_limit))
                sys.stderr.write(security.note_for_slurm() + "\n")
                sys.stdout.write(text)
                return
            else:
                raise UserError(f"--format {format!r}: expected tfjob, tf_config or sbatch")
        except UserError as e:
            _fail(e)
        sys.stderr.write(note + "\n")  # stdout stays the JSON document
        print(json.dumps(document, indent=2))


def check_options(argv: Sequence[str]) -> None:
    """Refuse an option that the command does not have, naming the nearest one it has.

    fire would complain about leftover arguments only after the command has returned, and `run` never
    returns (it exits with the run's code): a misspelt `--train_step 5000` would train to the default.
    """
    command = getattr(Launcher, argv[0], None) if argv else None
    if command is None or argv[0].startswith("_"):
        return  # fire says what the commands are
    params = inspect.signature(command).parameters
    known = [name for name in params if name != "self"]
    takes_value = False
    for arg in argv[1:]:
        if arg in _HELP:
            return
        if takes_value or not arg.startswith("--"):
            takes_value = False
            continue  # a value, or a positional argument: fire maps those
        name = arg[2:].split("=", 1)[0].replace("-", "_")
        negated = name[2:] if name.startswith("no") and name[2:] in known else None
        if name not in known and negated is None:
            nearest = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean --{nearest[0]}?" if nearest else f" (known: {', '.join('--' + k for k in known)})"
            raise UserError(f"unknown option --{name} for `launcher {argv[0]}`{hint}")
        takes_value = "=" not in arg and negated is None and not isinstance(params[name].default, bool)


def main() -> None:
    try:
        check_options(sys.argv[1:])
    except UserError as e:
        _fail(e)
    fire.Fire(Launcher, name="launcher")
