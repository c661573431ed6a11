"""The command line: `launcher run` and `launcher export`, a thin layer over `run` and `export`.

User errors end with one line on stderr and exit code 2 (see `exit_codes`); nothing else is printed as a
traceback unless it is a bug of ours.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from typing import Optional, Sequence, Union

import fire

from launcher.launch import backends
from launcher.cluster import exit_codes, run_config, spec as spec_lib
from launcher.cluster.errors import UserError
from launcher.cluster.restart_policy import RestartPolicy

Flags = Union[str, Sequence[str], None]
# "Seconds from launch" in run.json count from here: the launcher's own checks are part of the wait.
_LAUNCHED = time.time()


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

    def run(self, spec: str = "local2.json", model_dir: str = run_config.DEFAULT_MODEL_DIR,
            train_steps: int = run_config.DEFAULT_TRAIN_STEPS, model: str = run_config.DEFAULT_MODEL,
            chief_flags: Flags = None, worker_flags: Flags = None, ps_flags: Flags = None,
            evaluator_flags: Flags = None, max_restarts: int = run_config.DEFAULT_MAX_RESTARTS,
            restart_policy: str = RestartPolicy.EXIT_CODE.value,
            grace_secs: float = run_config.DEFAULT_GRACE_SECS, show_tf_logs: bool = False,
            backend: str = "local", ray_address: Optional[str] = None) -> None:
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
          show_tf_logs: show TensorFlow's start-up notices on the console.
          backend: where tasks run: local (processes on this machine) or ray (a Ray cluster).
          ray_address: HOST:PORT of a running Ray cluster; without it, a local Ray instance is started
            and stopped with the run.
        """
        from launcher.launch import run as run_lib

        role_flags = {"chief": _flag_list(chief_flags), "worker": _flag_list(worker_flags),
                      "ps": _flag_list(ps_flags), "evaluator": _flag_list(evaluator_flags)}
        try:
            loaded = spec_lib.load(str(spec))
            engine = backends.get(backend, address=ray_address)
            try:
                config = run_lib.prepare(loaded, str(model_dir), train_steps, str(model), role_flags, engine,
                                         max_restarts=max_restarts, restart_policy=restart_policy,
                                         grace_secs=grace_secs, show_tf_logs=bool(show_tf_logs))
            except BaseException:
                engine.close()
                raise
            outcome = run_lib.execute(config, engine, launched=_LAUNCHED)
        except UserError as e:
            _fail(e)
        stream = sys.stdout if outcome.exit_code == exit_codes.OK else sys.stderr
        stream.write(f"{outcome.name}: {outcome.summary}\n")
        sys.exit(outcome.exit_code)

    def export(self, spec: str = "local2.json", format: str = "tfjob", image: Optional[str] = None,
               name: str = "launcher", namespace: Optional[str] = None,
               model_dir: str = run_config.DEFAULT_MODEL_DIR, train_steps: int = run_config.DEFAULT_TRAIN_STEPS,
               model: str = run_config.DEFAULT_MODEL, max_restarts: int = run_config.DEFAULT_MAX_RESTARTS) -> None:
        """Print SPEC for another engine: a Kubeflow TFJob (--format tfjob --image IMAGE), or each task's
        TF_CONFIG and command (--format tf_config).

        Args:
          model_dir: on Kubernetes, storage that every pod shares.
        """
        try:
            from launcher.export import tf_config_commands, tfjob

            config = run_config.RunConfig(spec=spec_lib.load(str(spec)), model_dir=str(model_dir),
                                          train_steps=train_steps, model=str(model), max_restarts=max_restarts)
            if format == "tfjob":
                if not image:
                    raise UserError("--image is required with --format tfjob")
                document = tfjob.manifest(config, str(image), name=str(name), namespace=namespace)
            elif format == "tf_config":
                document = tf_config_commands.tf_config_commands(config)
            else:
                raise UserError(f"--format {format!r}: expected tfjob or tf_config")
        except UserError as e:
            _fail(e)
        print(json.dumps(document, indent=2))


def main() -> None:
    fire.Fire(Launcher, name="launcher")
