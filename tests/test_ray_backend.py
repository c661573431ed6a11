"""The same spec on a real Ray cluster, started by the launcher inside a network namespace of its own.

Ray replaces 127.0.0.1 with the machine's routable address; in a namespace with only loopback it has no
other, so nothing leaves this machine's loopback.
"""

import shutil
import signal
import subprocess

import pytest

from conftest import checkpoint_steps, last_run, wait_for

pytest.importorskip("ray")
NETNS = ("unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"')


def _netns_available():
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run([*NETNS, "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _netns_available(), reason="needs unshare -n and ip (root)")


@pytest.mark.parametrize("victim", ["task process", "its Ray worker"])
def test_local2_on_ray_trains_and_recovers_a_killed_task(runner, tmp_path, victim):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--backend", "ray", "--model_dir", str(model_dir),
                          "--model", "models.probe", "--train_steps", "400",
                          "--chief_flags=--step_sleep_secs=0.01 --save_checkpoint_steps=20",
                          "--worker_flags=--step_sleep_secs=0.01", prefix=NETNS)
    wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= 20], timeout=180,
             what="a checkpoint from the Ray cluster")
    [worker] = runner.marked_tasks("worker")
    (worker if victim == "task process" else worker.parent()).send_signal(signal.SIGKILL)
    assert launch.wait(300) == 0, launch.stderr[-3000:]
    run = last_run(model_dir)
    tasks = {f"{t['job']}:{t['index']}": t for t in run["tasks"]}
    assert tasks["worker:0"]["restarts"] == 1 and tasks["worker:0"]["exit_codes"][0] == -signal.SIGKILL
    assert tasks["chief:0"]["restarts"] == 0
    assert tasks["worker:0"]["steps"] > 0 and tasks["chief:0"]["steps"] > 0
    assert run["global_step_end"] == 400 and checkpoint_steps(model_dir)[-1] == 400
    addresses = [a for job in run["spec"]["cluster"].values() for a in job]
    assert all(a.startswith("127.0.0.1:") and not a.endswith(":0") for a in addresses), addresses
    assert "[worker:0] " in launch.stdout  # output streams back through the actors, prefixed
