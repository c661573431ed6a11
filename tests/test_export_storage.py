"""An exported TFJob is runnable as printed: every pod sees the model directory; the exposed ports are named.

The CRD schema is Kubeflow's training operator v1.9.0 TFJob CRD (tests/data/kubeflow, or the shared folder
next to the repository).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from launcher.cluster.errors import UserError  # noqa: E402
from launcher.cluster.run_config import RunConfig  # noqa: E402
from launcher.cluster.spec import from_json  # noqa: E402
from launcher.export import tfjob  # noqa: E402

CRD_NAME = "tfjobs.kubeflow.org-v1.9.0.crd.yaml"
CRD_PLACES = (REPO / "tests" / "data" / "kubeflow" / CRD_NAME, REPO.parent / "shared" / "kubeflow" / CRD_NAME)
IMAGE = "registry.example.com/launcher:1.0"
SPEC = {"cluster": {"chief": ["host-a:2222"], "worker": ["host-b:2222"], "ps": ["host-c:2222", "host-d:2222"],
                    "evaluator": ["host-e:2222"]}}


def config(model_dir: str) -> RunConfig:
    return RunConfig(spec=from_json(json.loads(json.dumps(SPEC)), "spec"), model_dir=model_dir)


@pytest.fixture(scope="module")
def validator():
    crd_file = next((p for p in CRD_PLACES if p.is_file()), None)
    if crd_file is None:
        pytest.skip(f"Kubeflow TFJob CRD not found in {[str(p) for p in CRD_PLACES]}")
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load(crd_file.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft7Validator(schema)


def pods(manifest: dict) -> dict[str, dict]:
    return {rtype: r["template"]["spec"] for rtype, r in manifest["spec"]["tfReplicaSpecs"].items()}


def export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launcher", "export", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_pvc_is_mounted_at_the_model_dir_in_every_pod(validator):
    manifest = tfjob.manifest(config("/mnt/shared/run"), IMAGE, pvc="team-runs")
    assert [e.message for e in validator.iter_errors(manifest)] == []
    assert set(pods(manifest)) == {"Chief", "Worker", "PS", "Evaluator"}
    for rtype, pod in pods(manifest).items():
        (volume,) = pod["volumes"]
        assert volume["persistentVolumeClaim"] == {"claimName": "team-runs"}
        (container,) = pod["containers"]
        (mount,) = container["volumeMounts"]
        assert mount == {"name": volume["name"], "mountPath": "/mnt/shared/run"}
        assert "--model_dir=/mnt/shared/run" in container["command"]


def test_a_url_model_dir_needs_no_claim(validator):
    manifest = tfjob.manifest(config("gs://bucket/run"), IMAGE)
    assert [e.message for e in validator.iter_errors(manifest)] == []
    for pod in pods(manifest).values():
        assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]
        assert "--model_dir=gs://bucket/run" in pod["containers"][0]["command"]


@pytest.mark.parametrize("model_dir, pvc, words", [
    ("/mnt/shared/run", None, ["nothing would be mounted", "--pvc"]),
    ("runs/relative", "team-runs", ["absolute path"]),
    ("gs://bucket/run", "team-runs", ["is a URL"]),
    ("ftp://host/run", None, ["ftp://", "gs://"]),
    ("/mnt/shared/run", "Team_Runs", ["not a Kubernetes object name"]),
])
def test_pods_that_would_not_share_the_model_dir_are_refused(model_dir, pvc, words):
    with pytest.raises(UserError) as refused:
        tfjob.manifest(config(model_dir), IMAGE, pvc=pvc)
    for word in words:
        assert word in str(refused.value)


def test_cli_refuses_a_local_path_without_pvc_in_one_line():
    result = export("--format", "tfjob", "--image", IMAGE, "--model_dir", "/mnt/shared/run")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "--pvc" in result.stderr


def test_cli_prints_the_manifest_on_stdout_and_the_security_note_on_stderr(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    result = export("--spec", str(spec), "--format", "tfjob", "--image", IMAGE, "--model_dir", "/mnt/run",
                    "--pvc", "team-runs")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)  # stdout is JSON and nothing else
    assert pods(manifest)["Chief"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "team-runs"
    assert "no authentication" in result.stderr and "port 2222" in result.stderr
    commands = export("--spec", str(spec), "--format", "tf_config", "--model_dir", "/mnt/run")
    assert commands.returncode == 0, commands.stderr
    assert len(json.loads(commands.stdout)) == 5
    for address in ("host-a:2222", "host-b:2222", "host-c:2222", "host-d:2222"):
        assert address in commands.stderr  # every server the commands start is named
    assert "host-e" not in commands.stderr  # the evaluator starts no server
