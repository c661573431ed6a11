"""Exported TFJob manifests and TF_CONFIG commands: valid against Kubeflow's CRD and true to the launcher.

The CRD schema is the one Kubeflow's training operator v1.9.0 publishes, kept in tests/data/kubeflow (see
its README for the source and licence); the round trip rebuilds the TF_CONFIG that the operator injects into each pod and checks that
the task program finds its own identity in it.
"""

from __future__ import annotations

import copy
import json
import pathlib
import shlex
import sys
from typing import Callable

import jsonschema
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the launcher is not installed in the test environment; run it from the checkout
    sys.path.insert(0, str(REPO))

from launcher.cluster import tf_config  # noqa: E402
from launcher.cluster.errors import SpecError  # noqa: E402
from launcher.export import tfjob  # noqa: E402
from launcher.export.tf_config_commands import tf_config_commands  # noqa: E402
from launcher.cluster.run_config import RunConfig  # noqa: E402
from launcher.cluster.spec import EVALUATOR, TaskId, from_json  # noqa: E402

CRD_FILE = pathlib.Path(__file__).resolve().parent / "data" / "kubeflow" / "tfjobs.kubeflow.org-v1.9.0.crd.yaml"

MODEL_DIR = "/mnt/shared/runs/export-test"
MAX_RESTARTS = 2
IMAGE = "registry.example.com/launcher:1.0"
PVC = "shared-runs"  # mounted at MODEL_DIR in every pod

SPECS = {
    "local1": {"cluster": {"chief": ["host-a:2222"]}},
    "local2": {"cluster": {"chief": ["host-a:2222"], "worker": ["host-b:2222"], "ps": ["host-c:2222"]}},
    "local4": {"cluster": {"chief": ["host-a:2222"],
                           "worker": ["host-b:2222", "host-c:2222", "host-d:2222"],
                           "ps": ["host-e:2222", "host-f:2222"]}},
    "evaluator": {"cluster": {"chief": ["host-a:2222"], "worker": ["host-b:2222", "host-c:2222"],
                              "ps": ["host-d:2222"], "evaluator": ["host-e:2222"]},
                  # A value that needs shell quoting, so the command strings are put to the test.
                  "flags": {"worker": ["--learning_rate=0.05", "--note=it's a \"test\" $HOME"],
                            "evaluator": ["--eval_every=10"]}},
}


def make_config(name: str) -> RunConfig:
    return RunConfig(spec=from_json(copy.deepcopy(SPECS[name]), name), model_dir=pathlib.Path(MODEL_DIR),
                     max_restarts=MAX_RESTARTS)


@pytest.fixture(params=sorted(SPECS))
def name(request) -> str:
    return request.param


@pytest.fixture
def config(name) -> RunConfig:
    return make_config(name)


# What every task command starts with, for the defaults of RunConfig and the model directory above; the
# role's flags from the spec follow it.
BASE_COMMAND = ["python", "-m", "launcher.task", "--model=launcher.models.linear", f"--model_dir={MODEL_DIR}",
                "--train_steps=1000"]


def expected_command(name: str, job: str) -> list[str]:
    # Without an evaluator the chief exports the final model for serving.
    exports = ["--export_serving"] if job == "chief" and EVALUATOR not in SPECS[name]["cluster"] else []
    return BASE_COMMAND + exports + SPECS[name].get("flags", {}).get(job, [])


def expected_cluster(name: str) -> dict:
    """The spec's cluster as TF_CONFIG holds it: the training jobs only (TensorFlow leaves the evaluator out)."""
    return {job: addrs for job, addrs in SPECS[name]["cluster"].items() if job != EVALUATOR}


@pytest.fixture(scope="module")
def validator():
    """A validator for the TFJob schema of the CRD."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator, manifest: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


def replica_type(job: str) -> str:
    return tfjob.REPLICA_TYPES[job]


# --- the manifest against the CRD -------------------------------------------------------------------------

@pytest.mark.parametrize("namespace", [None, "ml-team"])
def test_manifest_is_a_valid_tfjob(config, validator, namespace):
    manifest = tfjob.manifest(config, IMAGE, name="mnist", namespace=namespace, pvc=PVC)
    assert schema_errors(validator, manifest) == []
    assert manifest["apiVersion"] == "kubeflow.org/v1"
    assert manifest["kind"] == "TFJob"
    assert manifest["metadata"] == ({"name": "mnist", "namespace": namespace} if namespace else {"name": "mnist"})


def _set_replica(field: str, value: object) -> Callable[[dict], None]:
    def mutate(m: dict) -> None:
        m["spec"]["tfReplicaSpecs"]["Chief"][field] = value
    return mutate


def _set_port(m: dict) -> None:
    m["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "2222"


def _drop_container_name(m: dict) -> None:
    del m["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"][0]["name"]


def _drop_replica_specs(m: dict) -> None:
    del m["spec"]["tfReplicaSpecs"]


def _set_backoff(m: dict) -> None:
    m["spec"]["runPolicy"]["backoffLimit"] = "6"


@pytest.mark.parametrize("break_it", [_set_replica("replicas", "3"), _set_replica("restartPolicy", 1),
                                      _set_port, _drop_container_name, _drop_replica_specs, _set_backoff],
                         ids=["replicas-string", "restartPolicy-number", "port-string", "no-container-name",
                              "no-tfReplicaSpecs", "backoffLimit-string"])
def test_validator_rejects_a_broken_manifest(validator, break_it):
    manifest = tfjob.manifest(make_config("local2"), IMAGE, pvc=PVC)
    assert schema_errors(validator, manifest) == []
    break_it(manifest)
    assert schema_errors(validator, manifest) != []


# --- what the manifest says ----------------------------------------------------------------------------------

def test_one_replica_spec_per_role(name):
    replica_specs = tfjob.manifest(make_config(name), IMAGE, pvc=PVC)["spec"]["tfReplicaSpecs"]
    counts = {job: len(addresses) for job, addresses in SPECS[name]["cluster"].items()}
    assert set(replica_specs) == {replica_type(job) for job in counts}
    assert set(replica_specs) <= {"Chief", "Worker", "PS", "Evaluator"}
    for job, count in counts.items():
        replica = replica_specs[replica_type(job)]
        assert replica["replicas"] == count
        assert replica["restartPolicy"] == "ExitCode"
        (container,) = replica["template"]["spec"]["containers"]
        assert container["name"] == "tensorflow"
        assert container["image"] == IMAGE
        assert container["ports"] == [{"name": "tfjob-port", "containerPort": 2222}]


def test_container_commands_of_every_role():
    replicas = tfjob.manifest(make_config("evaluator"), IMAGE, pvc=PVC)["spec"]["tfReplicaSpecs"]
    command = {rtype: r["template"]["spec"]["containers"][0]["command"] for rtype, r in replicas.items()}
    base = ["python", "-m", "launcher.task", "--model=launcher.models.linear",
            "--model_dir=/mnt/shared/runs/export-test", "--train_steps=1000"]
    assert command == {
        "Chief": base,
        "Worker": base + ["--learning_rate=0.05", "--note=it's a \"test\" $HOME"],
        "PS": base,
        "Evaluator": base + ["--eval_every=10"],
    }


def test_container_command_is_the_specs(name):
    replicas = tfjob.manifest(make_config(name), IMAGE, pvc=PVC)["spec"]["tfReplicaSpecs"]
    for job in SPECS[name]["cluster"]:
        assert replicas[replica_type(job)]["template"]["spec"]["containers"][0]["command"] == \
            expected_command(name, job)


def test_command_takes_identity_from_tf_config(config):
    for replica in tfjob.manifest(config, IMAGE, pvc=PVC)["spec"]["tfReplicaSpecs"].values():
        argv = replica["template"]["spec"]["containers"][0]["command"]
        assert argv[:3] == ["python", "-m", "launcher.task"]
        assert f"--model_dir={MODEL_DIR}" in argv
        assert not [a for a in argv if a.split("=")[0] in ("--job_name", "--task_index", "--cluster_spec")]


def test_every_container_sets_tf_use_legacy_keras(name):
    # tf.compat.v1.layers need tf-keras, which TensorFlow uses only with this set before its import.
    for replica in tfjob.manifest(make_config(name), IMAGE, pvc=PVC)["spec"]["tfReplicaSpecs"].values():
        env = replica["template"]["spec"]["containers"][0]["env"]
        assert {"name": "TF_USE_LEGACY_KERAS", "value": "1"} in env, env


def test_role_flags_reach_their_role_only():
    replicas = tfjob.manifest(make_config("evaluator"), IMAGE, pvc=PVC)["spec"]["tfReplicaSpecs"]
    command = {rtype: r["template"]["spec"]["containers"][0]["command"] for rtype, r in replicas.items()}
    assert command["Worker"][-2:] == ["--learning_rate=0.05", "--note=it's a \"test\" $HOME"]
    assert command["Evaluator"][-1] == "--eval_every=10"
    assert not [a for a in command["Chief"] + command["PS"] if "learning_rate" in a or "eval_every" in a]


# --max_restarts 2 for each task, pooled: local1 has one task, local2 three, local4 six, "evaluator" five.
BACKOFF_LIMITS = {"local1": 2, "local2": 6, "local4": 12, "evaluator": 10}


def test_run_policy(name):
    run_policy = tfjob.manifest(make_config(name), IMAGE, pvc=PVC)["spec"]["runPolicy"]
    assert run_policy["cleanPodPolicy"] == "Running"
    assert run_policy["backoffLimit"] == BACKOFF_LIMITS[name]


# --- round trip through the operator's TF_CONFIG ---------------------------------------------------------------

def operator_tf_config(manifest: dict, replica: str, index: int) -> str:
    """The TF_CONFIG that Kubeflow's operator injects into pod `index` of `replica`.

    The cluster lists the training replicas (the evaluator is left out) by their service names, under
    lower-case job names; the task names the pod's own replica type and index.
    """
    name = manifest["metadata"]["name"]
    namespace = manifest["metadata"].get("namespace", "default")
    cluster = {}
    for rtype, spec in manifest["spec"]["tfReplicaSpecs"].items():
        job = rtype.lower()
        if job == EVALUATOR:
            continue
        port = spec["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        cluster[job] = [f"{name}-{job}-{i}.{namespace}.svc:{port}" for i in range(spec["replicas"])]
    return json.dumps({"cluster": cluster, "task": {"type": replica.lower(), "index": index},
                       "environment": "cloud"})


@pytest.mark.parametrize("namespace", [None, "ml-team"])
def test_every_pod_finds_its_identity_in_the_operators_tf_config(config, name, namespace):
    manifest = tfjob.manifest(config, IMAGE, name="mnist", namespace=namespace, pvc=PVC)
    pods = 0
    for rtype, replica in manifest["spec"]["tfReplicaSpecs"].items():
        for index in range(replica["replicas"]):
            value = operator_tf_config(manifest, rtype, index)
            task, cluster = tf_config.identity({"TF_CONFIG": value})
            assert task == TaskId(rtype.lower(), index)
            assert EVALUATOR not in cluster
            assert {job: len(addrs) for job, addrs in cluster.items()} == \
                {job: len(addrs) for job, addrs in expected_cluster(name).items()}
            pods += 1
    assert pods == len(_spec_tasks(name))


# --- TF_CONFIG commands ---------------------------------------------------------------------------------------

def _spec_tasks(name: str) -> list[tuple[str, int, str]]:
    """(job, index, address) of every task of a spec, read from its literal."""
    return [(job, index, address) for job, addresses in SPECS[name]["cluster"].items()
            for index, address in enumerate(addresses)]


def test_one_tf_config_command_per_task(name):
    entries = tf_config_commands(make_config(name))
    tasks = _spec_tasks(name)
    assert sorted(e["task"] for e in entries) == sorted(f"{job}:{index}" for job, index, _ in tasks)
    by_name = {e["task"]: e for e in entries}
    for job, index, address in tasks:
        entry = by_name[f"{job}:{index}"]
        assert entry["host"] == address.split(":")[0]
        assert json.loads(entry["TF_CONFIG"]) == {"cluster": expected_cluster(name),
                                                  "task": {"type": job, "index": index},
                                                  "environment": "cloud"}
        assert tf_config.identity({"TF_CONFIG": entry["TF_CONFIG"]})[0] == \
            TaskId(job, index)


def test_tf_config_command_round_trips_through_the_shell(name):
    for entry in tf_config_commands(make_config(name)):
        job = entry["task"].split(":")[0]
        assert shlex.split(entry["command"]) == ["TF_USE_LEGACY_KERAS=1", "TF_FORCE_GPU_ALLOW_GROWTH=true",
                                                  f"TF_CONFIG={entry['TF_CONFIG']}",
                                                  *expected_command(name, job)]


def test_tf_config_commands_need_fixed_ports():
    spec = from_json({"cluster": {"chief": ["host-a:2222"], "worker": ["host-b:0"]}}, "ports")
    with pytest.raises(SpecError, match=r"cluster\.worker\[0\].*port 0"):
        tf_config_commands(RunConfig(spec=spec, model_dir=pathlib.Path(MODEL_DIR)))


# --- elastic workers (docs/elastic.md) -------------------------------------------------------------------------

def test_tfjob_lets_the_operator_add_and_remove_workers(config, validator):
    manifest = tfjob.manifest(config, IMAGE, pvc=PVC)
    assert manifest["spec"]["enableDynamicWorker"] is True
    assert schema_errors(validator, manifest) == []  # the CRD knows the field


@pytest.mark.parametrize("name", ["local2", "local4"])
def test_tf_config_export_says_how_to_add_a_worker(name):
    import json as json_lib
    import shlex

    from launcher.export.tf_config_commands import NEW_WORKER_ADDRESS, add_worker_note

    config = make_config(name)
    note = add_worker_note(config)
    command = next(line for line in note.splitlines() if "TF_CONFIG=" in line)
    value = next(word for word in shlex.split(command) if word.startswith("TF_CONFIG="))[len("TF_CONFIG="):]
    added = json_lib.loads(value)
    workers = expected_cluster(name).get("worker", [])
    assert added["task"] == {"type": "worker", "index": len(workers)}
    assert added["cluster"] == {**expected_cluster(name), "worker": [*workers, NEW_WORKER_ADDRESS]}
    assert "launcher.task" in command
