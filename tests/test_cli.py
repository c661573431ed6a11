"""The command line's own behaviour: export, the optional Ray dependency, the console script."""

import json
import pathlib
import subprocess
import sys

import pytest

from launcher.cluster.errors import UserError


def _launcher(*args):
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, timeout=60)


def test_export_tfjob_prints_a_manifest_of_the_spec():
    done = _launcher("export", "--spec", "local4", "--format", "tfjob", "--image", "registry/train:1",
                     "--model_dir", "/shared/run", "--pvc", "shared-runs")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    replicas = {role: spec["replicas"] for role, spec in manifest["spec"]["tfReplicaSpecs"].items()}
    assert replicas == {"Chief": 1, "Worker": 3, "PS": 2}
    command = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]
    assert "--model_dir=/shared/run" in command


def test_export_tf_config_gives_one_command_per_task():
    done = _launcher("export", "--spec", "local2", "--format", "tf_config")
    # Port 0 cannot be picked for another machine: the spec must name real ports.
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "port" in done.stderr


@pytest.mark.parametrize("args, words", [
    (["export", "--spec", "local2", "--format", "tfjob"], ["--image is required"]),
    (["export", "--spec", "local2", "--format", "yaml"], ["--format 'yaml'"]),
    (["run", "--spec", "local1", "--backend", "slurm"], ["--backend 'slurm'", "local, ray"]),
    (["run", "--spec", "local1", "--backend", "ray", "--ray_address", "127.0.0.1:1"],
     ["--ray_address '127.0.0.1:1'", "nothing accepts connections"]),
])
def test_cli_user_errors_are_one_line(args, words):
    done = _launcher(*args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


def test_ray_backend_without_ray_says_what_to_install(monkeypatch):
    from launcher.launch.backends import ray_backend

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    with pytest.raises(UserError, match=r"pip install '\.\[ray\]'"):
        ray_backend.RayBackend()


def test_a_local_run_never_imports_ray():
    code = ("import sys; from launcher import cli, run, backends, supervisor; backends.get('local');"
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_console_script_is_installed():
    script = pathlib.Path(sys.executable).parent / "launcher"
    done = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True, timeout=60,
                          env={"PAGER": "cat", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "--train_steps" in done.stdout + done.stderr
