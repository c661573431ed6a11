"""TF_CONFIG: the value the launcher sets, and how a task finds its identity from flags or TF_CONFIG."""

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


def test_flags_win_over_tf_config():
    flag_cluster = {"chief": ["f:1"], "worker": ["f:2", "f:3"]}
    task, cluster = tf_config.resolve_identity("worker", 1, json.dumps(flag_cluster), env("ps", 0))
    assert task == TaskId("worker", 1)
    assert cluster == flag_cluster


def test_tf_config_alone_gives_identity_and_cluster():
    task, cluster = tf_config.resolve_identity(None, None, None, env("worker", 1))
    assert task == TaskId("worker", 1)
    assert cluster == CLUSTER


@pytest.mark.parametrize("job_name, task_index, cluster_json, environ, fragment", [
    pytest.param(None, None, None, {}, "no cluster: pass --cluster_spec or set TF_CONFIG", id="neither"),
    pytest.param(None, None, json.dumps(CLUSTER), {}, "no identity: pass --job_name and --task_index",
                 id="cluster but no identity"),
    pytest.param("worker", 2, json.dumps(CLUSTER), {}, "task worker:2 is not in the cluster", id="index outside"),
    pytest.param(None, None, None, env("ps", 3), "task ps:3 is not in the cluster", id="tf_config index outside"),
    pytest.param(None, None, None, {"TF_CONFIG": "{'task': 1}"}, "TF_CONFIG: not valid JSON", id="malformed"),
])
def test_unusable_identity_is_a_user_error(job_name, task_index, cluster_json, environ, fragment):
    with pytest.raises(UserError) as raised:
        tf_config.resolve_identity(job_name, task_index, cluster_json, environ)
    assert fragment in str(raised.value)
