"""One home for settings: the command line, RunConfig, the task command and docs/options.md all come from
launcher.cluster.settings, and agree with it option by option."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from conftest import REPO
from launcher import cli
from launcher.cluster import settings, task_command
from launcher.cluster.errors import UserError
from launcher.cluster.restart_policy import RestartPolicy
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import from_json

OPTIONS_PAGE = REPO / "docs" / "options.md"
SPEC = from_json({"chief": ["h:1"], "worker": ["h:2"], "evaluator": ["h:3"]}, "s.json")


def _documented() -> dict[str, str]:
    """`--name` -> the default as docs/options.md's reference shows it."""
    rows = re.findall(r"^\| `--(\w+)` \| ([^|]+) \|", OPTIONS_PAGE.read_text(), re.M)
    return {name: default.strip() for name, default in rows}


def test_the_options_page_has_the_reference_the_settings_make():
    text = OPTIONS_PAGE.read_text()
    assert settings.BEGIN in text and settings.END in text
    assert settings.with_reference(text) == text, \
        "docs/options.md is stale: python -m launcher.cluster.settings docs/options.md"


@pytest.mark.parametrize("command", ["run", "export"])
def test_every_option_of_the_command_line_is_documented_with_its_default(command):
    params = {name: p.default for name, p in inspect.signature(getattr(cli.Launcher, command)).parameters.items()
              if name != "self"}
    documented = _documented()
    assert params and set(params) <= set(documented)
    for name, default in params.items():
        assert documented[name] == settings.default_text(default), name


def test_the_command_line_has_the_options_and_defaults_the_settings_declare():
    run = inspect.signature(cli.Launcher.run).parameters
    assert [n for n in run if n != "self"] == [d.name for d in settings.declared("run")]
    assert run["hang_secs"].default == 120.0 and run["restart_policy"].default is RestartPolicy.EXIT_CODE
    export = inspect.signature(cli.Launcher.export).parameters
    assert {"spec", "model_dir", "train_steps", "model", "max_restarts", "format", "image", "pvc",
            "sync_replicas", "backup_workers", "gpus_per_task", "evaluator_gpus", "nodes", "cpus_per_task",
            "warning_secs", "time_limit"} == set(export) - {"self", "name", "namespace"}
    # An option that is not one of the command line's (a setting with no command) is not offered.
    assert "eval_wait_secs" not in run and settings.default("eval_wait_secs") == 120.0


def test_run_config_takes_options_by_name_and_keeps_them_in_their_groups():
    config = RunConfig(spec=SPEC, train_steps=50, hang_secs=30, ray_placement="pack")
    assert config.watchdog == settings.Watchdog(hang_secs=30.0)
    assert (config.train_steps, config.hang_secs, config.on_hang, config.ray.ray_placement) == \
        (50, 30.0, "restart", "pack")
    moved = dataclasses.replace(config, spec=SPEC.with_flags({"worker": ["--a=1"]}))
    assert moved.watchdog is config.watchdog and moved.spec.role_flags("worker") == ["--a=1"]
    with pytest.raises(TypeError, match="no such option: hang_sec"):
        RunConfig(spec=SPEC, hang_sec=30)
    with pytest.raises(AttributeError):
        config.nonexistent


def test_defaults_are_written_once():
    config = RunConfig(spec=SPEC)
    for declared in settings.declared():
        if declared.name in settings.GROUP_OF:
            assert getattr(config, declared.name) == (declared.default if declared.name != "ray_resources" else {})


@pytest.mark.parametrize("values, words", [
    ({"on_hang": "ignore"}, "--on_hang 'ignore': expected one of restart, abort, report"),
    ({"ray_placement": "scatter"}, "--ray_placement 'scatter': expected one of spread, pack"),
    ({"backend": "k8s"}, "--backend 'k8s': expected one of local, ray, slurm"),
    ({"patience": 0}, "--patience 0 is not a positive integer"),
    ({"keep_best": "acc:up"}, "--keep_best 'acc:up': expected METRIC"),
    ({"ray_resources": '{"CPU": 1}'}, "'CPU' is not a custom resource name"),
])
def test_a_bad_value_is_refused_naming_its_option(values, words):
    with pytest.raises(UserError) as refused:
        RunConfig(spec=SPEC, **values)
    assert words in str(refused.value)


def test_evaluator_options_reach_the_evaluator_only_where_they_differ_from_its_own_defaults():
    from launcher.task import eval_flags

    for holder in (eval_flags.KEEP_BEST, eval_flags.EARLY_STOP, eval_flags.PATIENCE):
        assert holder.default == settings.default(holder.name)
    config = RunConfig(spec=SPEC, keep_best="accuracy:max", early_stop="loss", patience=2)
    argv = task_command.command(config, "evaluator", python="py")
    assert argv[-3:] == ["--keep_best=accuracy:max", "--early_stop=loss", "--patience=2"]
    assert not [a for a in task_command.command(config, "chief", python="py") if "patience" in a]
    assert RunConfig(spec=SPEC, early_stop="loss").task_flags("evaluator") == ["--early_stop=loss"]
    assert RunConfig(spec=SPEC).task_flags("evaluator") == []


def test_the_options_a_run_hands_every_task_are_the_training_and_sync_groups():
    assert set(task_command.LAUNCHER_OWNED) == {"model", "model_dir", "train_steps", "sync_replicas",
                                                "backup_workers"}


def test_isolation_choices_are_the_modes_of_isolation():
    from launcher.launch.isolation import Mode

    isolation = next(d for d in settings.declared() if d.name == "isolation")
    assert isolation.option.choices == tuple(m.value for m in Mode)


def test_a_run_config_holds_every_group_a_run_has():
    # dataclasses.replace passes a RunConfig's fields back to it: a group missing from them would be reset.
    assert [f.name for f in dataclasses.fields(RunConfig)] == ["spec", *settings.RUN_GROUPS]


def _task_flag_rows(text: str) -> dict[str, str]:
    """The task-flag tables (`| flag | default | meaning |`): flag -> default as written."""
    rows = {}
    for table in re.findall(r"^\| flag \| default \| meaning \|\n((?:\|.*\n)+)", text, re.M):
        for name, default in re.findall(r"^\| `--(\w+)` \| ([^|]+) \|", table, re.M):
            rows[name] = default.strip()
    return rows


@pytest.mark.parametrize("page", ["options.md", "evaluator.md"])
def test_task_flag_tables_have_the_task_programs_defaults(page):
    from absl import flags

    from launcher.task import eval_flags, flags as task_flags  # noqa: F401 (they define the flags)

    rows = _task_flag_rows((REPO / "docs" / page).read_text())
    assert rows
    for name, written in rows.items():
        default = flags.FLAGS[name].default
        assert written == ("unset" if default is None else f"{default:g}"), name


def test_an_option_for_several_roles_reaches_each_of_them_once_set():
    @settings.group
    class Sync(settings.Group):
        title = "Sync"
        sync_replicas: bool = settings.setting(False, "aggregate gradients.", check=settings.flag,
                                               task_flag_for=("chief", "worker"))

    assert settings.task_flags([Sync()], "worker") == []
    assert settings.task_flags([Sync(sync_replicas=True)], "worker") == ["--sync_replicas"]
    assert settings.task_flags([Sync(sync_replicas=True)], "chief") == ["--sync_replicas"]
    assert settings.task_flags([Sync(sync_replicas=True)], "ps") == []
