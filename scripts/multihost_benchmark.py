"""Benchmark across hosts: local4 on a Ray cluster of 3 hosts of the test bed, against 1 host, and the
time to get over a lost host, beside the floor.

Needs root (the bed is network namespaces on a private bridge; see tests/hostbed.py). Prints:
- first step: seconds from launch to every training task's first step (max of run.json first_step_secs);
- steps/s: global steps trained over the chief's time from its first step to its exit;
  both for 3 hosts (2 CPUs each) and 1 host (4 CPUs), `--ray_cpus_per_task 0.5`;
- lost host: on 3 hosts, every process of the host holding a ps and a worker is SIGKILLed once a checkpoint
  exists; seconds from the kill to the global step advancing again (the first step of any chief or worker
  process started after the kill), with how long Ray took to declare the node dead inside it (the first
  move the launcher logged);
- floor: bare processes importing TensorFlow and starting a server (scripts/bench/floor.py), one alone and
  local4's 6 at once: no restarted task can train sooner than that after it is started. Measured after
  the runs, with a warm page cache as theirs.

    sudo python scripts/multihost_benchmark.py [--train_steps 400]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts"), str(ROOT)]

import hostbed  # noqa: E402
import raybed  # noqa: E402


def launch(cluster: raybed.RayCluster, model_dir: pathlib.Path, *args: str) -> subprocess.Popen:
    env = dict(cluster.env(), PYTHONUNBUFFERED="1")
    log = open(model_dir.parent / "launcher.out", "w")
    return cluster.bed[1].popen([sys.executable, "-m", "launcher", "run", "--backend", "ray", "--ray_address",
                                 cluster.address, "--spec", "local4", "--model_dir", str(model_dir),
                                 "--ray_cpus_per_task", "0.5", *args], env=env, cwd=str(ROOT), stdout=log,
                                stderr=subprocess.STDOUT)


def last_run(model_dir: pathlib.Path) -> dict:
    return json.loads((model_dir / "run.json").read_text())["runs"][-1]


def throughput(hosts: int, cpus: float, train_steps: int) -> dict:
    with hostbed.HostBed(hosts) as bed:
        cluster = raybed.RayCluster(bed, cpus_per_node=cpus).start()
        try:
            model_dir = pathlib.Path(tempfile.mkdtemp(prefix="mhb")) / "model"
            code = launch(cluster, model_dir, "--train_steps", str(train_steps)).wait(900)
            run = last_run(model_dir)
        finally:
            cluster.stop()
    if code != 0:
        raise SystemExit(f"{hosts}-host run failed with exit code {code}")
    training = [t for t in run["tasks"] if t["job"] in ("chief", "worker")]
    chief = next(t for t in training if t["job"] == "chief")["attempts"][0]
    steps = run["global_step_end"] - (run["global_step_start"] or 0)
    return {"hosts": hosts, "first_step_secs": max(t["first_step_secs"] for t in training),
            "steps_per_sec": round(steps / (chief["ended"] - chief["first_step"]), 1)}


def lost_host() -> dict:
    with hostbed.HostBed(3) as bed:
        cluster = raybed.RayCluster(bed).start()
        try:
            model_dir = pathlib.Path(tempfile.mkdtemp(prefix="mhb")) / "model"
            proc = launch(cluster, model_dir, "--train_steps", "1500", "--model", "models.probe",
                          "--chief_flags=--step_sleep_secs=0.02 --save_checkpoint_steps=50",
                          "--worker_flags=--step_sleep_secs=0.02")
            deadline = time.monotonic() + 600
            while not list(model_dir.glob("model.ckpt-*.index")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("no checkpoint before the kill")
                time.sleep(0.5)
            victim = next(h for h in (bed[3], bed[2]) if _has(h, {"ps", "worker"}))
            killed = time.time()
            victim.kill_all(signal.SIGKILL)
            code = proc.wait(900)
            run = last_run(model_dir)
        finally:
            cluster.stop()
    if code != 0:
        raise SystemExit(f"lost-host run failed with exit code {code}")
    later = [a for t in run["tasks"] if t["job"] in ("chief", "worker") for a in t["attempts"]
             if a["started"] >= killed and a["first_step"]]
    moves = [a["started"] for t in run["tasks"] for a in t["attempts"] if a.get("moved")]
    return {"step_again_secs": round(min(a["first_step"] for a in later) - killed, 1),
            "node_declared_dead_secs": round(min(moves) - killed, 1) if moves else None}


def _has(host: hostbed.Host, jobs: set[str]) -> bool:
    import psutil

    found = set()
    for pid in host.pids():
        try:
            proc = psutil.Process(pid)
            if "launcher.task" in proc.cmdline():
                found.add(json.loads(proc.environ()["TF_CONFIG"])["task"]["type"])
        except (psutil.Error, KeyError):
            continue
    return jobs <= found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_steps", type=int, default=400)
    args = parser.parse_args()
    reason = hostbed.unavailable()
    if reason:
        raise SystemExit(f"error: {reason}")
    from bench.floor import run_floor

    for hosts, cpus in ((1, 4), (3, 2)):
        r = throughput(hosts, cpus, args.train_steps)
        print(f"local4 on {hosts} host(s): first step {r['first_step_secs']:.1f} s, "
              f"{r['steps_per_sec']} steps/s", flush=True)
    lost = lost_host()
    # Measured last, with TensorFlow's files in the page cache as the runs had them: measured first, a cold
    # cache made the floor longer than the launcher's own first step.
    one, six = run_floor("local1", 300), run_floor("local4", 300)
    print(f"floor: 1 x TF import + server start {one.ready_secs:.1f} s; 6 in parallel (local4) "
          f"{six.ready_secs:.1f} s", flush=True)
    print(f"lost host (3 hosts): global step advancing again {lost['step_again_secs']} s after the kill "
          f"(Ray declared the node dead after {lost['node_declared_dead_secs']} s; floor for the restarted "
          f"tasks {six.ready_secs:.1f} s)", flush=True)

if __name__ == "__main__":
    main()
