"""Who can reach a local run's servers: from another host, none of its task ports accepts a connection.

The launcher runs on host 1 of the bed; host 2 tries every task port at host 1's address. The same check
against a run with `--isolation off` (TensorFlow's servers as they bind by default: every interface) does
connect, so the check can fail.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import psutil
import pytest

import hostbed
from conftest import MARKER, wait_for

bed2 = hostbed.host_bed(2)

CONNECT = ("import socket,sys\n"
           "for port in sys.argv[2:]:\n"
           "    try:\n"
           "        socket.create_connection((sys.argv[1], int(port)), timeout=3).close()\n"
           "        print(port, 'connected')\n"
           "    except OSError as e:\n"
           "        print(port, type(e).__name__)\n")


def task_ports(marker: str) -> dict[str, int]:
    """The port of every running task server of the run marked `marker`, from each task's own TF_CONFIG."""
    found = {}
    for proc in psutil.process_iter(["pid"]):
        try:
            env = proc.environ()
            if env.get(MARKER) != marker or "launcher.task" not in proc.cmdline() or "TF_CONFIG" not in env:
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        config = json.loads(env["TF_CONFIG"])
        job, index = config["task"]["type"], config["task"]["index"]
        found[f"{job}:{index}"] = int(config["cluster"][job][index].rsplit(":", 1)[1])
    return found


def connect_from(host: hostbed.Host, address: str, ports: list[int]) -> dict[int, str]:
    out = host.run([sys.executable, "-c", CONNECT, address, *map(str, ports)], timeout=60).stdout
    return {int(port): result for port, result in (line.split() for line in out.splitlines())}


def training(model_dir) -> bool:
    log = model_dir / "logs" / "chief-0.log"
    return log.exists() and "step = " in log.read_text()


def start_on_host1(runner, bed, model_dir, *extra: str):
    return runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "1000000",
                        *extra, prefix=tuple(bed[1].command([])))


def stop(launch) -> None:
    os.kill(launch.proc.pid, signal.SIGTERM)
    launch.wait(120)


def test_a_local_run_is_unreachable_from_another_host(runner, bed2, tmp_path):
    model_dir = tmp_path / "isolated"
    launch = start_on_host1(runner, bed2, model_dir)
    try:
        wait_for(lambda: training(model_dir), 180, "the isolated run to train")
        ports = task_ports(runner.marker)
        assert set(ports) == {"chief:0", "worker:0", "ps:0"}
        assert set(connect_from(bed2[2], bed2[1].address, list(ports.values())).values()) == \
            {"ConnectionRefusedError"}
        # Nor from host 1 itself, outside the run's namespace; yet the servers are up: they are training.
        assert set(connect_from(bed2[1], "127.0.0.1", list(ports.values())).values()) == {"ConnectionRefusedError"}
    finally:
        stop(launch)
    assert "no network isolation" not in launch.stderr


def test_the_check_connects_to_a_run_without_isolation(runner, bed2, tmp_path):
    model_dir = tmp_path / "exposed"
    launch = start_on_host1(runner, bed2, model_dir, "--isolation", "off")
    try:
        wait_for(lambda: training(model_dir), 180, "the run to train")
        ports = task_ports(runner.marker)
        assert set(connect_from(bed2[2], bed2[1].address, list(ports.values())).values()) == {"connected"}
    finally:
        stop(launch)


def test_isolation_required_where_impossible_is_refused(runner, tmp_path):
    # Without unshare, nsenter and ip on the PATH no namespace can be made (as for a user without them).
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(tmp_path / "m"), "--isolation", "required",
                          prefix=("env", f"PATH={os.path.dirname(sys.executable)}"))
    assert launch.wait(120) == 2
    assert launch.stderr.startswith("error: --isolation required") and launch.stderr.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_without_isolation_auto_warns_in_one_line_naming_the_ports(runner, tmp_path):
    model_dir = tmp_path / "m"
    launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "5",
                        prefix=("env", f"PATH={os.path.dirname(sys.executable)}"), timeout=240)
    assert launch.proc.returncode == 0, launch.stderr[-2000:]
    warnings = [line for line in launch.stderr.splitlines() if line.startswith("warning: no network isolation")]
    assert len(warnings) == 1
    spec = json.loads((model_dir / "run.json").read_text())["runs"][-1]["spec"]
    port = spec["cluster"]["chief"][0].rsplit(":", 1)[1]
    assert f"task ports {port} " in warnings[0] and "every interface" in warnings[0]


@pytest.mark.parametrize("args, words", [
    (["--isolation", "bogus"], ["--isolation 'bogus'", "auto, required, off"]),
    (["--isolation", "required", "--backend", "ray"], ["--isolation required", "Ray"]),
])
def test_bad_isolation_options_are_refused_before_anything_starts(runner, tmp_path, args, words):
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(tmp_path / "m"), *args, timeout=120)
    assert launch.proc.returncode == 2
    assert launch.stderr.startswith("error: ") and launch.stderr.count("\n") == 1, launch.stderr
    for word in words:
        assert word in launch.stderr
    assert not (tmp_path / "m").exists()
