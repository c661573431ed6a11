"""The task program's command line: launcher flags first, then the role's own flags from the spec."""

from __future__ import annotations

import pytest

from launcher.cluster import task_command
from launcher.cluster.errors import UserError
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import from_json

SPEC = from_json({"cluster": {"chief": ["h:1"], "worker": ["h:2"], "ps": ["h:3"], "evaluator": ["h:4"]},
                  "flags": {"worker": ["--learning_rate=0.05", "--batch_size=8"]}}, "s.json")
CONFIG = RunConfig(spec=SPEC, model_dir="gs://bucket/run", train_steps=50, model="my.model")
LAUNCHER_FLAGS = ["--model=my.model", "--model_dir=gs://bucket/run", "--train_steps=50"]


def test_role_flags_come_after_the_launchers_own_and_only_for_that_role():
    worker = task_command.command(CONFIG, "worker", python="py")
    assert worker == ["py", "-m", "launcher.task", *LAUNCHER_FLAGS, "--learning_rate=0.05", "--batch_size=8"]
    chief = task_command.command(CONFIG, "chief", python="py")
    assert chief == ["py", "-m", "launcher.task", *LAUNCHER_FLAGS]


def test_identity_and_cluster_are_left_to_tf_config():
    argv = task_command.command(CONFIG, "ps", python="py", model_dir="/elsewhere")
    assert "--model_dir=/elsewhere" in argv
    assert not [arg for arg in argv if arg.startswith(("--job_name", "--task_index", "--cluster_spec"))]


@pytest.mark.parametrize("flag", ["--model_dir=/elsewhere", "--train_steps=5", "--model=other"])
def test_a_per_role_value_of_a_launcher_option_is_refused_naming_its_origin(flag):
    spec = SPEC.with_flags({"ps": ["--max_to_keep=2", flag]})
    with pytest.raises(UserError, match=rf"--ps_flags\[1\]: '{flag}': .* set by the launcher"):
        RunConfig(spec=spec)


def test_origins_name_the_spec_file_and_the_command_line():
    spec = SPEC.with_flags({"worker": ["--learning_rate=0.1"]})
    assert spec.flag_origins("worker") == ["s.json: flags.worker[0]", "s.json: flags.worker[1]",
                                           "--worker_flags[0]"]
    assert spec.role_flags("worker")[-1] == "--learning_rate=0.1"


def test_sync_replicas_reaches_the_chief_and_workers_only():
    config = RunConfig(spec=SPEC, model_dir="gs://bucket/run", train_steps=50, model="my.model",
                       sync_replicas=True, backup_workers=1)
    for job in ("chief", "worker"):
        assert task_command.command(config, job, python="py")[3:8] == [
            *LAUNCHER_FLAGS, "--sync_replicas", "--backup_workers=1"]
    for job in ("ps", "evaluator"):
        assert "--sync_replicas" not in task_command.command(config, job, python="py")
    assert "--sync_replicas" not in task_command.command(CONFIG, "worker", python="py")  # async: no flag


@pytest.mark.parametrize("sync, backup, message", [
    (True, 2, r"--backup_workers 2: must be below the number of training tasks, 2 in s.json"),
    (False, 1, r"--backup_workers 1 needs --sync_replicas"),
    (True, True, r"--backup_workers True is not a non-negative integer"),
])
def test_backup_workers_checked_against_the_spec(sync, backup, message):
    with pytest.raises(UserError, match=message):
        RunConfig(spec=SPEC, sync_replicas=sync, backup_workers=backup)
