"""The command line's own behaviour: export, the optional Ray dependency, the console script."""

import json
import pathlib
import shlex
import subprocess
import sys

import pytest

from conftest import Launch

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


def test_export_tf_config_gives_one_command_per_task(tmp_path):
    cluster = {"chief": ["host-a:2222"], "worker": ["host-b:2223", "host-c:2224"], "ps": ["host-d:2225"]}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"cluster": cluster, "flags": {"worker": ["--learning_rate=0.05"]}}))
    done = _launcher("export", "--spec", str(spec), "--format", "tf_config", "--model_dir", "/shared/run")
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    tasks = ["chief:0", "worker:0", "worker:1", "ps:0"]
    assert sorted(e["task"] for e in entries) == sorted(tasks)
    hosts = {"chief:0": "host-a", "worker:0": "host-b", "worker:1": "host-c", "ps:0": "host-d"}
    for entry in entries:
        job, index = entry["task"].split(":")
        assert entry["host"] == hosts[entry["task"]]
        expected_tf_config = {"cluster": cluster, "task": {"type": job, "index": int(index)}}
        assert {k: v for k, v in json.loads(entry["TF_CONFIG"]).items() if k != "environment"} == expected_tf_config
        # The command carries that same TF_CONFIG, then the task program with the role's own flags.
        legacy_keras, growth, env, *argv = shlex.split(entry["command"])
        assert (legacy_keras, growth) == ("TF_USE_LEGACY_KERAS=1", "TF_FORCE_GPU_ALLOW_GROWTH=true")
        assert env.startswith("TF_CONFIG=") and json.loads(env[len("TF_CONFIG="):]) == json.loads(entry["TF_CONFIG"])
        assert argv[1:3] == ["-m", "launcher.task"] and "--model_dir=/shared/run" in argv
        assert ("--learning_rate=0.05" in argv) == (job == "worker")


def test_export_tf_config_needs_fixed_ports():
    done = _launcher("export", "--spec", "local2", "--format", "tf_config")
    # Port 0 cannot be picked for another machine: the spec must name real ports.
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "port" in done.stderr


@pytest.mark.parametrize("args, words", [
    (["export", "--spec", "local2", "--format", "tfjob"], ["--image is required"]),
    (["export", "--spec", "local2", "--format", "yaml"], ["--format 'yaml'"]),
    (["run", "--spec", "local1", "--backend", "kubernetes"], ["--backend 'kubernetes'", "local, ray, slurm"]),
    (["run", "--spec", "local1", "--backend", "ray", "--ray_address", "127.0.0.1:1"],
     ["--ray_address '127.0.0.1:1'", "nothing accepts connections"]),
    (["run", "--spec", "local1", "--bogus_flag", "3"], ["unknown option --bogus_flag for `launcher run`"]),
    (["run", "--spec", "local1", "--train_step", "5000"], ["unknown option --train_step", "did you mean --train_steps?"]),
    (["run", "--spec=local1", "--grace-sec=3"], ["unknown option --grace_sec", "did you mean --grace_secs?"]),
    (["export", "--spec", "local2", "--imgae", "x"], ["unknown option --imgae for `launcher export`", "--image"]),
    (["export", "--spec", "local2", "--format", "tf_config", "--train_steps", "abc"],
     ["--train_steps 'abc' is not a positive integer"]),
    (["export", "--spec", "local2", "--image", "x", "--max_restarts", "-1"],
     ["--max_restarts -1 is not a non-negative integer"]),
    (["run", "--spec", "local1", "--worker_exit_secs", "-5"], ["--worker_exit_secs -5", "non-negative number"]),
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


@pytest.mark.cluster
def test_a_local_run_never_imports_ray(runner, tmp_path):
    """Checked on a real run: the launcher process reports every module it imports, to the end of the run."""
    env = {**runner.env(), "PYTHONPROFILEIMPORTTIME": "1"}
    launch = Launch(["run", "--spec", "local1", "--model_dir", str(tmp_path / "m"), "--train_steps", "20"],
                    tmp_path, env, "importtime")
    runner.launches.append(launch)
    assert launch.wait() == 0, launch.stderr[-3000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in launch.stderr.splitlines()
                if line.startswith("import time:")]
    assert "launcher.launch.supervisor" in imported  # the report covers the run itself
    assert not [m for m in imported if m == "ray" or m.startswith("ray.")]


def test_console_script_is_installed():
    script = pathlib.Path(sys.executable).parent / "launcher"
    done = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True, timeout=60,
                          env={"PAGER": "cat", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "--train_steps" in done.stdout + done.stderr
