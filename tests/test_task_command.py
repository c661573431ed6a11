"""The task program's command line: launcher flags first, then the role's own flags from the spec."""

from __future__ import annotations

import json

from launcher.cluster import task_command
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import TaskId, from_json

SPEC = from_json({"cluster": {"chief": ["h:1"], "worker": ["h:2"], "ps": ["h:3"], "evaluator": ["h:4"]},
                  "flags": {"worker": ["--learning_rate=0.05", "--batch_size=8"]}}, "s.json")
CONFIG = RunConfig(spec=SPEC, model_dir="gs://bucket/run", train_steps=50, model="my.model")
LAUNCHER_FLAGS = ["--model=my.model", "--model_dir=gs://bucket/run", "--train_steps=50"]


def test_role_flags_come_after_the_launchers_own_and_only_for_that_role():
    worker = task_command.command(CONFIG, "worker", TaskId("worker", 0), python="py")
    assert worker[:3] == ["py", "-m", "launcher.task"]
    assert worker[-2:] == ["--learning_rate=0.05", "--batch_size=8"]
    assert set(LAUNCHER_FLAGS) <= set(worker[:-2])
    chief = task_command.command(CONFIG, "chief", TaskId("chief", 0), python="py")
    assert not [arg for arg in chief if arg.startswith(("--learning_rate", "--batch_size"))]


def test_without_a_task_identity_and_cluster_are_left_to_tf_config():
    argv = task_command.command(CONFIG, "worker", python="py")
    assert argv == ["py", "-m", "launcher.task", *LAUNCHER_FLAGS, "--learning_rate=0.05", "--batch_size=8"]


def test_with_a_task_cluster_spec_is_the_training_cluster():
    argv = task_command.command(CONFIG, "ps", TaskId("ps", 0), python="py", model_dir="/elsewhere")
    assert "--job_name=ps" in argv and "--task_index=0" in argv
    assert "--model_dir=/elsewhere" in argv
    [cluster_flag] = [arg for arg in argv if arg.startswith("--cluster_spec=")]
    assert json.loads(cluster_flag.split("=", 1)[1]) == {"chief": ["h:1"], "worker": ["h:2"], "ps": ["h:3"]}
