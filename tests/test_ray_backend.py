"""The same spec on a real Ray cluster, started by the launcher inside a network namespace of its own.

Ray replaces 127.0.0.1 with the machine's routable address; in a namespace with only loopback it has no
other, so nothing leaves this machine's loopback.
"""

import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from conftest import checkpoint_steps, is_ray_actor, last_run, logged_step, task_name, wait_for

pytest.importorskip("ray")
NETNS = ("unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"')


def _netns_available():
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run([*NETNS, "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _netns_available(), reason="needs unshare -n and ip (root)")


@pytest.mark.parametrize("victim", ["task process", "its Ray worker", "its warm process"])
def test_local2_on_ray_trains_and_recovers_a_killed_task(runner, tmp_path, victim):
    """A task forked from its node's warm process; started cold for "its Ray worker", whose child it is then
    (a forked task is its warm process's child, and a dead warm process means cold starts from then on)."""
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--backend", "ray", "--ray_cpus_per_task", "0.5", "--model_dir", str(model_dir),
                          "--model", "models.probe", "--train_steps", "400",
                          "--chief_flags=--step_sleep_secs=0.01 --save_checkpoint_steps=20",
                          "--worker_flags=--step_sleep_secs=0.01",
                          *(["--nowarm_starts"] if victim == "its Ray worker" else []), prefix=NETNS)
    wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= 20], timeout=180,
             what="a checkpoint from the Ray cluster")
    [worker] = runner.marked_tasks("worker")
    parent = worker.parent()
    assert ("launcher.task.warm" in parent.cmdline()) == (victim != "its Ray worker"), parent.cmdline()
    (worker if victim == "task process" else parent).send_signal(signal.SIGKILL)
    assert launch.wait(300) == 0, launch.stderr[-3000:]
    run = last_run(model_dir)
    tasks = {f"{t['job']}:{t['index']}": t for t in run["tasks"]}
    assert tasks["worker:0"]["restarts"] == 1 and tasks["worker:0"]["exit_codes"][0] == -signal.SIGKILL
    if victim == "its warm process":
        # Its children go with it (they stop as when their launcher dies), and start again cold, said once.
        assert tasks["chief:0"]["restarts"] == tasks["ps:0"]["restarts"] == 1, tasks
        assert len([line for line in launch.stderr.splitlines() if "starts cold" in line]) == 1, launch.stderr
    else:
        assert tasks["chief:0"]["restarts"] == 0
    assert tasks["worker:0"]["steps"] > 0 and tasks["chief:0"]["steps"] > 0
    assert run["global_step_end"] == 400 and checkpoint_steps(model_dir)[-1] == 400
    addresses = [a for job in run["spec"]["cluster"].values() for a in job]
    assert all(a.startswith("127.0.0.1:") and not a.endswith(":0") for a in addresses), addresses
    assert "[worker:0] " in launch.stdout  # output streams back through the actors, prefixed


def test_sigterm_on_ray_preempts_like_a_local_run(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--backend", "ray", "--ray_cpus_per_task", "0.5", "--model_dir", str(model_dir),
                          "--model", "models.probe", "--train_steps", "100000",
                          "--chief_flags=--step_sleep_secs=0.01 --save_checkpoint_secs=3600",
                          "--worker_flags=--step_sleep_secs=0.01", prefix=NETNS)
    log = model_dir / "logs" / "chief-0.log"
    wait_for(lambda: logged_step(log) >= 100, timeout=180, what="the chief's step 100")
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait(120) == 143, launch.stderr[-3000:]
    assert runner.leftovers() == []  # tasks, actors and the Ray instance the launcher started
    run = last_run(model_dir)
    assert run["outcome"] == "preempted" and run["global_step_end"] >= 100
    # Ray's task ports cannot be hidden in a namespace: the launcher says so, as `export` does.
    assert re.search(r"^note: Security: TensorFlow's gRPC servers have no authentication .* Anyone who can "
                     r"connect to (127\.0\.0\.1|[\d.]+):\d+, .* Run them on a private network only", launch.stderr,
                     re.M), launch.stderr[-3000:]
    assert checkpoint_steps(model_dir)[-1] == run["global_step_end"]


def test_runs_on_a_ray_cluster_that_is_already_running(runner, tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray_cli = pathlib.Path(sys.executable).parent / "ray"
    head = (f'ip link set lo up && "{ray_cli}" start --head --port=6390 --num-cpus=4 --include-dashboard=false '
            f'--disable-usage-stats --temp-dir={ray_tmp} >/dev/null && exec "$0" "$@"')
    model_dir = tmp_path / "model"
    try:
        launch = runner.run("run", "--spec", "local2", "--backend", "ray", "--ray_address", "127.0.0.1:6390",
                            "--model_dir", str(model_dir), "--train_steps", "300",
                            prefix=("unshare", "-n", "sh", "-c", head), timeout=300)
        assert launch.proc.returncode == 0, launch.stderr[-3000:]
        assert last_run(model_dir)["global_step_end"] == 300
    finally:
        # Stop the head we started, and only it (not `ray stop`, which ends every cluster on the machine):
        # its own processes, not the launcher's task processes or actors, which the runner's leak check,
        # after this, must find gone by themselves.
        for proc in runner.leftovers():
            if task_name(proc) is None and not is_ray_actor(proc):
                proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
