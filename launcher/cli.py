"""The command line: `launcher run`, `scale`, `report` and `export`, a thin layer over `launch.run`,
`scale_requests`, `report` and `export`.

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
from typing import Callable, Optional, Sequence

import fire

from launcher.cluster import exit_codes, settings, spec as spec_lib
from launcher.cluster.errors import UserError
from launcher.cluster.run_config import RunConfig
from launcher.cluster.stop_signals import StopRequest

# "Seconds from launch" in run.json count from here: the launcher's own checks are part of the wait.
_LAUNCHED = time.time()
_HELP = ("--help", "-h", "--")


def _flag_list(value: settings.Flags) -> list[str]:
    """`--worker_flags="--a=1 --b=2"` or, through fire, a list `["--a=1", "--b=2"]`."""
    if value is None or value == ():
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _fail(error: UserError) -> None:
    sys.stderr.write(f"error: {error}\n")
    sys.exit(error.exit_code)


def _signature(command: str) -> inspect.Signature:
    """The command's options as keyword parameters, with their defaults: what fire and check_options see."""
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature([this, *(inspect.Parameter(d.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        default=d.default) for d in settings.declared(command))])


def _options(command: str, summary: str) -> Callable:
    """Makes `impl(self, values)` the method of `command`: its options and their defaults from the settings,
    as keyword (or positional) parameters that fire and check_options see, and its --help from their help."""
    signature = _signature(command)
    args = "\n".join(f"  {d.name}: {d.option.help}" for d in settings.declared(command))

    def wrap(impl: Callable[[object, dict], None]) -> Callable:
        def method(self, *args, **kwargs) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            return impl(self, {name: value for name, value in bound.arguments.items() if name != "self"})

        method.__name__ = method.__qualname__ = command
        method.__signature__ = signature
        method.__doc__ = f"{summary}\n\nArgs:\n{args}\n"
        return method
    return wrap


def _run_config(values: dict, spec: spec_lib.ClusterSpec) -> RunConfig:
    """The RunConfig of `values`: its spec aside, the options of the groups a run holds."""
    return RunConfig(spec=spec, **{name: value for name, value in values.items() if name in settings.GROUP_OF})


class Launcher:
    """Distributed training of graph-mode TensorFlow models on a chief/worker/ps cluster."""

    @_options(settings.RUN, "Train MODEL on the cluster of SPEC until the global step reaches TRAIN_STEPS.")
    def run(self, values: dict) -> None:
        from launcher.launch import backends, run as run_lib

        # First of all: a stop signal from now on is honoured, and nothing started is left behind.
        stop = StopRequest(armed=True, exit_when_hurried=False).install()
        role_flags = {job: _flag_list(values[name]) for job, name in settings.ROLE_FLAGS.items()}
        try:
            config = _run_config(values, spec_lib.load(str(values["spec"])).with_flags(role_flags))
            run_lib.check_model_dir(config.model_dir)  # before a backend starts anything (Ray starts at once)
            run_lib.check_launcher_files(config.model_dir, config.spec)
            engine = backends.get(config.engine, config.ray, config.gpus, warm=run_lib.warm_options(config))
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

    def report(self, model_dir: str = settings.default("model_dir"), html: Optional[str] = None) -> None:
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

    def scale(self, model_dir: Optional[str] = None, workers: object = None, chief: object = None,
              ps: object = None) -> None:
        """Change the number of workers of the run that holds MODEL_DIR, through that run's launcher.

        Added workers start gated like any task; removed ones (highest index first) finish their step and
        exit 0. The chief and the ps are not scaled. See docs/elastic.md.

        Args:
          model_dir: the model directory of a running `launcher run`.
          workers: how many workers the run should have from now on.
          chief: refused: a run has one chief, for its whole life.
          ps: refused: the number of ps is fixed for a run.
        """
        from launcher.launch import scale_requests

        try:
            if model_dir is None:
                raise UserError("`launcher scale MODEL_DIR --workers N`: MODEL_DIR is missing")
            if chief is not None:
                raise UserError("--chief: a run has one chief for its whole life; only workers are scaled")
            if ps is not None:
                raise UserError("--ps: the number of ps is fixed for a run (the graph places its variables on "
                                "each); only workers are scaled")
            if workers is None or workers is True:
                raise UserError("--workers N is required: how many workers the run should have")
            if not isinstance(workers, int) or isinstance(workers, bool):
                raise UserError(f"--workers {workers!r}: not a whole number")
            print(scale_requests.send(str(model_dir), workers))
        except UserError as e:
            _fail(e)

    @_options(settings.EXPORT, "Print SPEC for another engine: a Kubeflow TFJob (--format tfjob --image IMAGE), "
              "each task's\nTF_CONFIG and command (--format tf_config), or a Slurm batch script that runs the launcher "
              "with --backend slurm (--format sbatch). A security note on the exposed ports "
              "goes to stderr.")
    def export(self, values: dict) -> None:
        try:
            from launcher.cluster import model_dir as model_dir_rules
            from launcher.export import sbatch, security, tf_config_commands, tfjob

            config = _run_config(values, spec_lib.load(str(values["spec"])))
            export = settings.Export(**{name: values[name] for name in settings.EXPORT_OPTIONS})
            if export.format == "tfjob":
                if not export.image:
                    raise UserError("--image is required with --format tfjob")
                document = tfjob.manifest(config, str(export.image), name=str(export.name),
                                          namespace=export.namespace,
                                          pvc=None if export.pvc is None else str(export.pvc))
                note = security.note_for_pods(tfjob.PORT)
            elif export.format == "sbatch":
                if export.pvc is not None or export.image is not None:
                    raise UserError("--pvc and --image are for --format tfjob; a batch script runs on the "
                                    "allocation's nodes, which share the model directory")
                spec = str(values["spec"])
                spec_arg = spec if spec_lib.is_bundled_name(spec) else os.path.abspath(config.spec.source)
                text = sbatch.script(config, spec_arg, job_name=str(export.name), nodes=export.nodes,
                                     cpus_per_task=export.cpus_per_task, warning_secs=export.warning_secs,
                                     time_limit=None if export.time_limit is None else str(export.time_limit))
                sys.stderr.write(security.note_for_slurm() + "\n")
                sys.stdout.write(text)
                return
            else:
                if export.pvc is not None:
                    raise UserError("--pvc is for --format tfjob; TF_CONFIG commands use the model directory "
                                    "as every host sees it")
                model_dir_rules.check_for_tasks(config.model_dir)
                document = tf_config_commands.tf_config_commands(config)
                note = security.note_for_hosts(config.spec) + "\n" + tf_config_commands.add_worker_note(config)
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


def dash_values(argv: Sequence[str]) -> list[str]:
    """`--html -` as `--html=-`: fire takes a bare "-" for its separator of chained commands (this command
    line chains none), which would leave `--html` a flag, True."""
    out: list[str] = []
    for arg in argv:
        if arg == "-" and out and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] += "=-"
        else:
            out.append(arg)
    return out


def main() -> None:
    argv = dash_values(sys.argv[1:])
    try:
        check_options(argv)
    except UserError as e:
        _fail(e)
    fire.Fire(Launcher, command=argv, name="launcher")
