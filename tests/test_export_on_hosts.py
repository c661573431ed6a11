"""The TF_CONFIG commands of `launcher export`, each run on its own host of the bed, train to the target and
every process ends by itself with exit 0: no supervisor exists in this mode, the ps included."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

import hostbed
from conftest import checkpoint_steps

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAIN_STEPS = 100

bed3 = hostbed.host_bed(3)


def exported_commands(tmp_path: pathlib.Path, bed: hostbed.HostBed) -> list[dict]:
    spec = tmp_path / "hosts.json"
    spec.write_text(json.dumps({"cluster": {"chief": [f"{bed[1].address}:2222"],
                                            "worker": [f"{bed[2].address}:2222"],
                                            "ps": [f"{bed[3].address}:2222"]}}))
    done = subprocess.run([sys.executable, "-m", "launcher", "export", "--spec", str(spec), "--format",
                           "tf_config", "--model_dir", str(tmp_path / "model"), "--train_steps", str(TRAIN_STEPS)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_tf_config_commands_on_three_hosts_train_and_end_by_themselves(bed3, tmp_path):
    entries = exported_commands(tmp_path, bed3)
    assert [e["host"] for e in entries] == [bed3[1].address, bed3[2].address, bed3[3].address]
    # The command as printed, run by a shell on its host; `python` is this environment's.
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    procs = {}
    for entry, host in zip(entries, bed3.hosts):
        log = open(tmp_path / f"{entry['task'].replace(':', '-')}.log", "w")
        procs[entry["task"]] = host.popen(["sh", "-c", entry["command"]], env=env, cwd=REPO,
                                          stdout=log, stderr=subprocess.STDOUT)
        log.close()
    codes = {}
    for task, proc in procs.items():
        try:
            codes[task] = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            codes[task] = None  # still running: the bed's teardown kills it
    logs = {task: (tmp_path / f"{task.replace(':', '-')}.log").read_text()[-2000:] for task in procs}
    assert codes == {"chief:0": 0, "worker:0": 0, "ps:0": 0}, logs
    assert checkpoint_steps(tmp_path / "model")[-1] == TRAIN_STEPS
    assert "the chief has saved the final checkpoint" in logs["ps:0"]
    assert not bed3.pids(), "a process of the cluster is still running on a host"
