"""Benchmark across hosts: local4 on a Ray cluster of 3 hosts of the test bed, against 1 host, and the
time to get over a lost host, beside the floor.

Needs root (the bed is network namespaces on a private bridge; see tests/hostbed.py). Prints:
- first step: seconds from launch to every training task's first step (max of run.json first_step_secs);
- steps/s: global steps trained over the chief's time from its first step to its exit;
  both for 3 hosts (2 CPUs each) and 1 host (4 CPUs), `--ray_cpus_per_task 0.5`;
- lost host: on 3 hosts, every process of the host holding a ps and a worker is SIGKILLed once a checkpoint
  exists; seconds from the kill to the global step advancing again (from the run's own series of the
  global step in run.json, after the first move), with how long Ray took to declare the node dead inside
  it (the first move's start), how long the moved tasks took from their start to their first step, and
  how many processes on surviving hosts restarted (none: moves restart nobody else);
- lost worker host: a chief, two workers and a ps (the plan puts each worker on a host of its own), the
  host holding only a worker SIGKILLed: the global step rate before the loss, during it (until Ray
  declares the node dead) and after, and the moved worker's start to first step;
- floor: bare processes importing TensorFlow and starting a server (scripts/bench/floor.py), one alone and
  local4's 6 at once: no restarted task can train sooner than that after it is started. Measured after
  the runs, with a warm page cache as theirs.

    sudo python scripts/multihost_benchmark.py [--train_steps 400] [--only lost]
"""

from __future__ import annotations

import argparse
import json
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


def launch(cluster: raybed.RayCluster, model_dir: pathlib.Path, *args: str, spec: str = "local4") -> subprocess.Popen:
    env = dict(cluster.env(), PYTHONUNBUFFERED="1")
    log = open(model_dir.parent / "launcher.out", "w")
    return cluster.bed[1].popen([sys.executable, "-m", "launcher", "run", "--backend", "ray", "--ray_address",
                                 cluster.address, "--spec", spec, "--model_dir", str(model_dir),
                                 "--ray_cpus_per_task", "0.5", *args], env=env, cwd=str(ROOT), stdout=log,
                                stderr=subprocess.STDOUT)


PROBE = ("--model", "models.probe", "--chief_flags=--step_sleep_secs=0.02 --save_checkpoint_steps=50",
         "--worker_flags=--step_sleep_secs=0.02")


def _until_checkpoint(proc: subprocess.Popen, model_dir: pathlib.Path, settle_secs: float = 10) -> None:
    deadline = time.monotonic() + 600
    while not list(model_dir.glob("model.ckpt-*.index")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("no checkpoint before the kill")
        time.sleep(0.5)
    time.sleep(settle_secs)  # a rate to compare with


def _rate(series: list, start: float, end: float) -> float:
    """Global steps per second between two times, from run.json's (time, step) series."""
    inside = [(t, s) for t, s in series if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return 0.0
    return max(0.0, inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def _advancing_again(series: list, after: float) -> float:
    """The first time after `after` at which the global step is above the sample before it."""
    for (_, before), (t, step) in zip(series, series[1:]):
        if t > after and step > before:
            return t
    raise SystemExit("the global step never advanced again")


def _moved(run: dict) -> list[dict]:
    return [a for t in run["tasks"] for a in t["attempts"] if a.get("moved")]


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


def _lose_a_host(launch_args: tuple, victim_of, settle_secs: float, spec: str = "local4") -> tuple[dict, float]:
    """A run on a 3-host bed, whose host `victim_of(bed)` has every process SIGKILLed once a checkpoint
    exists (and `settle_secs` later): its run.json record and the time of the kill."""
    with hostbed.HostBed(3) as bed:
        cluster = raybed.RayCluster(bed).start()
        try:
            model_dir = pathlib.Path(tempfile.mkdtemp(prefix="mhb")) / "model"
            proc = launch(cluster, model_dir, *launch_args, *PROBE, spec=spec)
            _until_checkpoint(proc, model_dir, settle_secs)
            victim = victim_of(bed)
            killed = time.time()
            victim.kill_all(signal.SIGKILL)
            code = proc.wait(900)
            run = last_run(model_dir)
        finally:
            cluster.stop()
    if code != 0:
        raise SystemExit(f"the run that lost a host failed with exit code {code}")
    return run, killed


def _moves(run: dict) -> dict:
    moved = _moved(run)
    if not moved:
        raise SystemExit("the lost host's tasks did not move")
    return {"declared": min(a["started"] for a in moved),
            "moved_first_step_secs": [round(a["first_step"] - a["started"], 1) for a in moved if a["first_step"]],
            "restarted_elsewhere": sum(len(t["attempts"]) - 1 for t in run["tasks"]) - len(moved)}


def lost_host() -> dict:
    run, killed = _lose_a_host(("--train_steps", "3000"), settle_secs=0,
                               victim_of=lambda bed: next(h for h in (bed[3], bed[2]) if _has(h, {"ps", "worker"})))
    moves = _moves(run)
    again = _advancing_again(run["global_step_series"], moves["declared"])
    return {**moves, "step_again_secs": round(again - killed, 1),
            "node_declared_dead_secs": round(moves["declared"] - killed, 1),
            "after_declared_secs": round(again - moves["declared"], 1)}


def lost_worker_host() -> dict:
    spec = pathlib.Path(tempfile.mkdtemp(prefix="mhb")) / "spec.json"
    spec.write_text(json.dumps({"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"] * 2,
                                            "ps": ["localhost:0"]}}))
    run, killed = _lose_a_host(("--train_steps", "8000"), settle_secs=10, spec=str(spec),
                               victim_of=lambda bed: next(bed[n] for n in (3, 2) if _jobs(bed[n]) == {"worker"}))
    moves = _moves(run)
    declared, series = moves["declared"], run["global_step_series"]
    return {**moves, "before": round(_rate(series, killed - 10, killed), 1),
            "during": round(_rate(series, killed, declared), 1),
            "after": round(_rate(series, declared + 5, declared + 15), 1),
            "node_declared_dead_secs": round(declared - killed, 1)}


def _jobs(host: hostbed.Host) -> set[str]:
    import psutil

    found = set()
    for pid in host.pids():
        try:
            proc = psutil.Process(pid)
            if "launcher.task" in proc.cmdline():
                found.add(json.loads(proc.environ()["TF_CONFIG"])["task"]["type"])
        except (psutil.Error, KeyError):
            continue
    return found


def _has(host: hostbed.Host, jobs: set[str]) -> bool:
    return jobs <= _jobs(host)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_steps", type=int, default=400)
    parser.add_argument("--only", choices=("throughput", "lost"), default=None,
                        help="the throughput runs alone, or the two lost-host runs alone")
    args = parser.parse_args()
    reason = hostbed.unavailable()
    if reason:
        raise SystemExit(f"error: {reason}")
    from bench.floor import run_floor

    if args.only != "lost":
        for hosts, cpus in ((1, 4), (3, 2)):
            r = throughput(hosts, cpus, args.train_steps)
            print(f"local4 on {hosts} host(s): first step {r['first_step_secs']:.1f} s, "
                  f"{r['steps_per_sec']} steps/s", flush=True)
    if args.only == "throughput":
        return
    lost = lost_host()
    workers = lost_worker_host()
    # Measured last, with TensorFlow's files in the page cache as the runs had them: measured first, a cold
    # cache made the floor longer than the launcher's own first step.
    one, six = run_floor("local1", 300), run_floor("local4", 300)
    print(f"floor: 1 x TF import + server start {one.ready_secs:.1f} s; 6 in parallel (local4) "
          f"{six.ready_secs:.1f} s", flush=True)
    print(f"lost host with a ps and a worker (local4, 3 hosts): global step advancing again "
          f"{lost['step_again_secs']} s after the kill, {lost['after_declared_secs']} s after Ray declared the "
          f"node dead ({lost['node_declared_dead_secs']} s); the moved tasks' start to first step "
          f"{lost['moved_first_step_secs']} s; processes restarted elsewhere: {lost['restarted_elsewhere']}",
          flush=True)
    print(f"lost host with a worker only (chief, 2 workers, ps): global steps/s {workers['before']} before, "
          f"{workers['during']} during the loss ({workers['node_declared_dead_secs']} s until Ray declared the "
          f"node dead), {workers['after']} after; the moved worker's start to first step "
          f"{workers['moved_first_step_secs']} s; processes restarted elsewhere: {workers['restarted_elsewhere']}",
          flush=True)


if __name__ == "__main__":
    main()
