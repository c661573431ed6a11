"""TF_CONFIG: the value the launcher sets, and how a task finds its identity in it."""

from __future__ import annotations

import json

import pytest

from launcher.cluster import tf_config
from launcher.cluster.errors import UserError
from launcher.cluster.spec import TaskId

CLUSTER = {"chief": ["h:1"], "worker": ["h:2", "h:3"], "ps": ["h:4"]}


def env(task_type: str, index: int, cluster=CLUSTER) -> dict:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


def test_build_has_tensorflows_format_without_the_evaluator():
    value = json.loads(tf_config.build({**CLUSTER, "evaluator": ["h:5"]}, TaskId("worker", 1)))
    assert value["cluster"] == CLUSTER
    assert value["task"] == {"type": "worker", "index": 1}


def test_parse_maps_master_to_chief():
    cluster, task = tf_config.parse(env("master", 0)["TF_CONFIG"])
    assert task == TaskId("chief", 0)
    assert cluster == CLUSTER


def test_tf_config_alone_gives_identity_and_cluster():
    task, cluster = tf_config.identity(env("worker", 1))
    assert task == TaskId("worker", 1)
    assert cluster == CLUSTER


def test_the_evaluator_is_outside_the_cluster():
    task, cluster = tf_config.identity(env("evaluator", 0))
    assert task == TaskId("evaluator", 0) and "evaluator" not in cluster


@pytest.mark.parametrize("environ, fragment", [
    pytest.param({}, "TF_CONFIG must give the cluster and this task", id="absent"),
    pytest.param({"TF_CONFIG": json.dumps({"cluster": CLUSTER})}, "must give the cluster and this task",
                 id="no task"),
    pytest.param(env("worker", 2), "task worker:2 is not in the cluster", id="index outside"),
    pytest.param(env("trainer", 0), "task trainer:0 is not in the cluster", id="unknown job"),
    pytest.param({"TF_CONFIG": "{'task': 1}"}, "TF_CONFIG: not valid JSON", id="malformed"),
])
def test_unusable_identity_is_a_user_error(environ, fragment):
    with pytest.raises(UserError) as raised:
        tf_config.identity(environ)
    assert fragment in str(raised.value)
