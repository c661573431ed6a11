"""Runs on a real Ray cluster of three hosts of the bed (network namespaces on a private bridge): where
tasks land, checked from the hosts' own process lists; a spec the cluster cannot hold; a lost host; a cut
link. The launcher runs on host 1, beside the head, as a user would run it on the head machine."""

from __future__ import annotations

import json
import signal
import time

import psutil

import raybed
from conftest import checkpoint_steps, last_run, wait_for, warm_base

ray3 = raybed.ray_cluster(3, scope="module")  # shared by the tests that leave it intact
fresh_ray3 = raybed.ray_cluster(3)  # for the tests that lose a host

PROBE = ("--model", "models.probe", "--chief_flags=--step_sleep_secs=0.02 --save_checkpoint_steps=50",
         "--worker_flags=--step_sleep_secs=0.02")


def launch(runner, cluster, *args):
    prefix = (*cluster.bed[1].command(["env", *(f"{k}={v}" for k, v in cluster.env({}).items())]),)
    return runner.start("run", "--backend", "ray", "--ray_address", cluster.address, *args, prefix=prefix)


def _parent(pid: int) -> tuple[int, int, list[str]]:
    """(pid, parent's pid, command line) of the parent of process `pid`."""
    parent = psutil.Process(pid).parent()
    return parent.pid, parent.ppid(), parent.cmdline()


def tasks_on_hosts(bed) -> dict[str, int]:
    """Task name -> number of the host whose namespace its process is in."""
    return {task: host for task, (host, _) in bed.tasks().items()}


def hosts_of(run: dict) -> dict[str, list[str]]:
    return {f"{t['job']}:{t['index']}": [a["host"] for a in t["attempts"]] for t in run["tasks"]}


def test_local4_spreads_over_all_three_hosts(runner, ray3, tmp_path, tmp_path_factory):
    model_dir = tmp_path / "model"
    run = launch(runner, ray3, "--spec", "local4", "--model_dir", str(model_dir), "--train_steps", "150", *PROBE)
    wait_for(lambda: run.proc.poll() is not None or len(tasks_on_hosts(ray3.bed)) == 6, timeout=240,
             what="six task processes on the bed")
    found = ray3.bed.tasks()
    forked_from = {task: _parent(pid) for task, (_, pid) in found.items()}
    on_host = {host.number: set(host.pids()) for host in ray3.bed.hosts}
    placed = tasks_on_hosts(ray3.bed)
    assert run.wait(300) == 0, run.stderr[-3000:]
    # Each host's tasks forked from that host's warm process, which the nodes' warm base (LAUNCHER_WARM_BASE in
    # their environment) forked into the host's network namespace: nobody on the bed imported TensorFlow.
    base_pid = warm_base(tmp_path_factory).proc.pid
    for task, (host, _) in found.items():
        pid, ppid, cmdline = forked_from[task]
        assert "launcher.task.warm" in cmdline and ppid == base_pid and pid in on_host[host], (task, run.stderr[-2000:])
    training = {placed[t] for t in placed if t.startswith(("chief", "worker"))}
    assert training == {1, 2, 3}, placed  # training tasks on every host
    assert placed["ps:0"] != placed["ps:1"], placed  # the ps apart
    record = last_run(model_dir)
    assert {t: h[-1] for t, h in hosts_of(record).items()} == {t: ray3.bed[n].address for t, n in placed.items()}
    assert record["global_step_end"] == 150


def test_a_worker_added_by_scale_is_placed_on_the_cluster_and_trains(runner, ray3, tmp_path):
    import subprocess
    import sys

    model_dir = tmp_path / "model"
    run = launch(runner, ray3, "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "3000", *PROBE)
    wait_for(lambda: run.proc.poll() is not None or [s for s in checkpoint_steps(model_dir) if s >= 50],
             timeout=300, what="a checkpoint")
    assert run.proc.poll() is None, run.stderr[-3000:]
    scaled = subprocess.run([sys.executable, "-m", "launcher", "scale", str(model_dir), "--workers", "2"],
                            env=runner.env(), capture_output=True, text=True, timeout=120)
    assert scaled.returncode == 0 and "adding worker:1" in scaled.stdout, (scaled.stdout, scaled.stderr)
    assert run.wait(420) == 0, run.stderr[-3000:]
    record = last_run(model_dir)
    tasks = {f"{t['job']}:{t['index']}": t for t in record["tasks"]}
    assert tasks["worker:1"]["steps"] > 0 and tasks["worker:1"]["restarts"] == 0, tasks["worker:1"]
    assert tasks["worker:1"]["attempts"][0]["host"] in {h.address for h in ray3.bed.hosts}
    assert all(len(t["attempts"]) == 1 for t in record["tasks"]), record["tasks"]
    assert [(c["task"], c["change"]) for c in record["membership"]] == [("worker:1", "join")]


def test_pack_fills_one_host_before_the_next(runner, ray3, tmp_path):
    # Half a CPU a task, 2 CPUs a host: the first host takes four of local4's six tasks, the next the rest
    # (spread, above, would put the training tasks on all three).
    model_dir = tmp_path / "model"
    run = launch(runner, ray3, "--spec", "local4", "--model_dir", str(model_dir), "--train_steps", "150",
                 "--ray_placement", "pack", "--ray_cpus_per_task", "0.5", *PROBE)
    wait_for(lambda: run.proc.poll() is not None or len(tasks_on_hosts(ray3.bed)) == 6, timeout=240,
             what="six task processes on the bed")
    placed = tasks_on_hosts(ray3.bed)
    assert run.wait(300) == 0, run.stderr[-3000:]
    assert sorted(list(placed.values()).count(host) for host in set(placed.values())) == [2, 4], placed
    assert last_run(model_dir)["global_step_end"] == 150


def test_a_spec_the_cluster_cannot_hold_is_refused_at_once(runner, ray3, tmp_path):
    model_dir = tmp_path / "model"
    started = time.monotonic()
    run = launch(runner, ray3, "--spec", "local4", "--model_dir", str(model_dir), "--ray_cpus_per_task", "1.5")
    assert run.wait(120) == 2
    assert time.monotonic() - started < 60  # the Ray connection included; nothing waits for room
    assert run.stderr.splitlines() == [
        "error: --backend ray: the Ray cluster lacks CPU: 3 missing (6 tasks x 1.5 = 9 needed, 6 free on 3 alive "
        "nodes)"]
    assert not model_dir.exists() and tasks_on_hosts(ray3.bed) == {}

    run = launch(runner, ray3, "--spec", "local2", "--model_dir", str(model_dir), "--ray_resources",
                 '{"accel": 1}')
    assert run.wait(120) == 2
    assert run.stderr.splitlines() == ["error: --backend ray: the Ray cluster lacks accel: 3 missing "
                                       "(3 tasks x 1 = 3 needed, 0 free on 3 alive nodes)"]


def _host_with(bed, wanted: set[str]) -> int:
    placed = tasks_on_hosts(bed)
    return next(n for n in (3, 2) if wanted <= {t.split(":")[0] for t, h in placed.items() if h == n})


def test_a_lost_host_is_survived_and_no_task_elsewhere_restarts(runner, fresh_ray3, tmp_path):
    model_dir = tmp_path / "model"
    bed = fresh_ray3.bed
    # Half a CPU per task: after losing a host, the other two have room for its tasks.
    # 1000 steps: after the loss, the others train on for about 15 s, time for the moved worker to start (7 s
    # seen on loaded cores) and join; with 400 they were once done first.
    run = launch(runner, fresh_ray3, "--spec", "local4", "--model_dir", str(model_dir), "--train_steps", "1000",
                 "--ray_cpus_per_task", "0.5", *PROBE)
    wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= 50], timeout=300, what="a checkpoint")
    saved = checkpoint_steps(model_dir)[-1]
    victim = _host_with(bed, {"ps", "worker"})  # never host 1: the launcher and the head live there
    lost = {t for t, n in tasks_on_hosts(bed).items() if n == victim}
    bed[victim].kill_all(signal.SIGKILL)  # its raylet, its actors, its tasks: all at once
    assert run.wait(420) == 0, run.stderr[-3000:]
    record = last_run(model_dir)
    assert record["global_step_end"] == 1000 and checkpoint_steps(model_dir)[-1] == 1000
    tasks = {f"{t['job']}:{t['index']}": t for t in record["tasks"]}
    assert tasks["chief:0"]["session_steps"][-1] >= saved  # the restarted chief went on from a checkpoint
    for name in lost:
        [move] = [a["moved"] for a in tasks[name]["attempts"] if "moved" in a]
        assert move["from"] == bed[victim].address and move["to"] != bed[victim].address
        assert move["why"] == f"node {bed[victim].address} lost"
        assert tasks[name]["restarts"] >= 1
        if name.startswith("worker"):  # a moved worker trains at its new address (its ps learnt it)
            attempts = tasks[name]["attempts"]
            since_move = attempts[next(i for i, a in enumerate(attempts) if "moved" in a):]
            assert sum(a["local_steps"] for a in since_move) > 0, attempts
    # Nobody on a surviving host restarted: the moved tasks' addresses reached the others through the
    # published cluster (docs/elastic.md), not by restarting them.
    for name, task in tasks.items():
        if name not in lost:
            assert task["restarts"] == 0 and len(task["attempts"]) == 1, (name, task)
    assert "moves from" in run.stdout + run.stderr
    assert "to learn the new address" not in run.stdout + run.stderr, run.stdout[-3000:]
    assert all(n != victim for n in tasks_on_hosts(bed).values())


def test_a_lost_host_whose_tasks_fit_nowhere_ends_the_run(runner, fresh_ray3, tmp_path):
    model_dir = tmp_path / "model"
    bed = fresh_ray3.bed
    run = launch(runner, fresh_ray3, "--spec", "local4", "--model_dir", str(model_dir), "--train_steps", "100000",
                 *PROBE)  # one CPU per task: six of six
    wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= 50], timeout=300, what="a checkpoint")
    victim = _host_with(bed, {"ps"})
    bed[victim].kill_all(signal.SIGKILL)
    killed = time.monotonic()
    assert run.wait(300) == 1, run.stderr[-3000:]
    assert time.monotonic() - killed < 240
    assert "cannot move: the Ray cluster lacks CPU" in run.stderr, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert checkpoint_steps(model_dir)[-1] >= 50  # kept
    assert last_run(model_dir)["outcome"] == "failed"


def test_a_worker_whose_host_is_cut_off_is_named_unreachable(runner, fresh_ray3, tmp_path):
    """The watchdog's verdict on a cut link: the silent worker is named, as unreachable, not as stuck."""
    model_dir = tmp_path / "model"
    bed = fresh_ray3.bed
    spec = tmp_path / "spec.json"  # the plan puts the chief and the ps together, each worker on a host of its own
    spec.write_text(json.dumps({"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"] * 2,
                                            "ps": ["localhost:0"]}}))
    # Enough steps that the cut comes mid-run, not while tasks end (each of them would be asked from the
    # cut-off host, the only other one).
    run = launch(runner, fresh_ray3, "--spec", str(spec), "--model_dir", str(model_dir), "--train_steps", "3000",
                 "--ray_cpus_per_task", "0.5", "--hang_secs", "4", "--on_hang", "report", *PROBE)
    wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= 50], timeout=300, what="a checkpoint")
    placed = tasks_on_hosts(bed)
    worker, victim = next((t, n) for t, n in placed.items()
                          if n != 1 and t.startswith("worker") and list(placed.values()).count(n) == 1)
    bed[victim].cut()
    try:
        wait_for(lambda: "is unreachable" in run.stdout + run.stderr, timeout=60, what="a verdict")
    finally:
        bed[victim].restore()
    assert run.wait(420) == 0, run.stderr[-3000:]
    record = last_run(model_dir)
    hang = next(h for h in record["hangs"] if "is unreachable" in h["verdict"])
    assert hang["culprits"] == [worker], hang
    assert f"{worker} is unreachable at {bed[victim].address}:" in hang["verdict"], hang["verdict"]
    assert hang["tasks"][worker]["reachability"] == "unreachable" and hang["action"] == "report", hang
    assert record["global_step_end"] == 3000 and checkpoint_steps(model_dir)[-1] == 3000


# Ray may or may not declare the cut host dead within the 20 s (its health check gives up after ~8-16 s): if
# it does, the host's tasks move (nobody else restarts); if not, they rejoin without a restart.
# In the second case a step whose RPC was in flight to or from the cut host waits on a connection that the
# other side closed during the cut (seen: a worker's socket to a ps ESTABLISHED, the ps's end gone, no byte in
# flight either way): --step_timeout_secs cancels that step, and the kernel's keepalive (every task sets it)
# finds the dead connection, so the worker's new session is not stuck on it. The run ends seconds after the
# cut heals, and a worker's silence counts from its last word before the cut: the test gives the workers'
# recovery the time it takes (a step timeout, 5 s here, then the keepalive's first probe). With the defaults
# (60 s, and --worker_exit_secs 30) the chief may rightly give up on such a worker.
# Ray may also declare the host dead just as training ends: a worker moved then finds its ps released, and
# the launcher dismisses it at once instead of waiting for it.
def test_a_host_cut_off_for_20_seconds_is_survived(runner, fresh_ray3, tmp_path):
    model_dir = tmp_path / "model"
    bed = fresh_ray3.bed
    timeout = "--step_timeout_secs=5"  # the probe's steps take 0.02 s
    run = launch(runner, fresh_ray3, "--spec", "local4", "--model_dir", str(model_dir), "--train_steps", "600",
                 "--ray_cpus_per_task", "0.5", "--worker_exit_secs", "120", "--model", "models.probe",
                 f"--chief_flags=--step_sleep_secs=0.02 --save_checkpoint_steps=50 {timeout}",
                 f"--worker_flags=--step_sleep_secs=0.02 {timeout}")
    wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= 50], timeout=300, what="a checkpoint")
    victim = _host_with(bed, {"ps", "worker"})
    bed[victim].cut()
    try:
        time.sleep(20)
    finally:
        bed[victim].restore()
    assert run.wait(300) == 0, run.stderr[-3000:]
    record = last_run(model_dir)
    assert record["global_step_end"] == 600 and checkpoint_steps(model_dir)[-1] == 600
    output = run.stdout + run.stderr
    # Nobody was left behind: no task silent long enough for the watchdog, none given up on at the end.
    assert "[launcher] hang:" not in output and "gave up waiting" not in output, output[-3000:]
    cut_off = [t for t in record["tasks"] if any(a["host"] == bed[victim].address for a in t["attempts"])]
    assert cut_off, record["tasks"]
    moved = [t for t in cut_off if any(a.get("moved") for a in t["attempts"])]
    if moved:
        # Ray declared the host dead: each of its tasks moved off it, in one step.
        assert len(moved) == len(cut_off), cut_off
        assert all(t["attempts"][-1]["host"] != bed[victim].address for t in cut_off), cut_off
    else:
        # It did not: each rejoined without a restart (a ps is stopped by the launcher at the end: 143).
        assert all(t["restarts"] == 0 and t["exit_code"] in (0, 143) for t in cut_off), cut_off
