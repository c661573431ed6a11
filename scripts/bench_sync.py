"""Synchronous training with and without a backup worker, and asynchronous training, beside a slow worker.

    python scripts/bench_sync.py [--model launcher.models.mlp] [--window_secs 30] [--duty 0.25] [--period 0.4]
                                 [--modes async,sync,backup] [--json PATH]

On a chief, 2 workers and a ps (local processes, loopback), for each mode (async; sync, no backup worker;
sync, one backup worker) it trains twice: once with every task at full speed, once with worker:1 slowed
to `--duty` of its time (stopped and resumed by pid, SIGSTOP/SIGCONT, every `--period` seconds: 4x slower
at 0.25). It measures the global steps/s over `--window_secs` of steady training (from run.json's
global_step_series), then ends the run with SIGTERM. Prints each mode's steps/s with and without the slow
worker and their ratio. Every process it starts is killed before it returns.
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
import threading
import time

import psutil

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.table import fmt, format_table  # noqa: E402
from bench.task_processes import task_name  # noqa: E402

CLUSTER = {"chief": ["localhost:0"], "worker": ["localhost:0", "localhost:0"], "ps": ["localhost:0"]}
MODES = {"async": [], "sync, no backup": ["--sync_replicas"],
         "sync, 1 backup": ["--sync_replicas", "--backup_workers", "1"]}
MODE_KEYS = {"async": "async", "sync": "sync, no backup", "backup": "sync, 1 backup"}
SLOW_TASK = "worker:1"
WARM_STEPS = 200


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _tasks(root: int) -> dict[str, psutil.Process]:
    found = {}
    for child in psutil.Process(root).children():
        name = task_name(child)
        if name:
            found[name] = child
    return found


def _logged_step(log: pathlib.Path) -> int:
    import re
    if not log.exists():
        return -1
    return max((int(m) for m in re.findall(r"step = (\d+)", log.read_text(errors="replace"))), default=-1)


class DutyCycle:
    """Lets a process run `duty` of every `period` seconds (SIGSTOP/SIGCONT), in a thread; always resumes it."""

    def __init__(self, pid: int, duty: float, period: float):
        self._pid, self._run, self._stop = pid, duty * period, (1 - duty) * period
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> DutyCycle:
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            while not self._done.wait(self._run):
                os.kill(self._pid, signal.SIGSTOP)
                if self._done.wait(self._stop):
                    break
                os.kill(self._pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        finally:
            try:
                os.kill(self._pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def trial(work: pathlib.Path, name: str, mode_args: list[str], slow: bool, args) -> dict:
    model_dir = work / name.replace(" ", "_").replace(",", "")
    spec = work / "spec.json"
    spec.write_text(json.dumps(CLUSTER))
    argv = [sys.executable, "-m", "launcher", "run", "--spec", str(spec), "--model_dir", str(model_dir),
            "--model", args.model, "--train_steps", "10000000", "--hang_secs", "3600", *mode_args,
            "--chief_flags=--log_step_count_steps=50 --save_checkpoint_secs=3600"]
    with open(work / f"{model_dir.name}.out", "w") as out:
        proc = subprocess.Popen(argv, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _logged_step(model_dir / "logs" / "chief-0.log") < WARM_STEPS:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no step {WARM_STEPS} (see {out.name})")
            time.sleep(0.5)
        victim = _tasks(proc.pid)[SLOW_TASK].pid
        if slow:
            with DutyCycle(victim, args.duty, args.period):
                time.sleep(2)  # let the slow pace set in
                start = time.time()
                time.sleep(args.window_secs)
                end = time.time()
        else:
            time.sleep(2)
            start = time.time()
            time.sleep(args.window_secs)
            end = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in _leftovers(model_dir):
            child.kill()
    series = json.loads((model_dir / "run.json").read_text())["runs"][-1]["global_step_series"]
    inside = [(t, s) for t, s in series if start <= t <= end]
    (t0, s0), (t1, s1) = inside[0], inside[-1]
    return {"mode": name, "slow_worker": slow, "steps_per_sec": (s1 - s0) / (t1 - t0), "steps": s1 - s0,
            "secs": t1 - t0}


def _leftovers(model_dir: pathlib.Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if f"--model_dir={model_dir}" in proc.cmdline():
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="launcher.models.mlp")
    parser.add_argument("--window_secs", type=float, default=30)
    parser.add_argument("--duty", type=float, default=0.25, help="share of time the slow worker runs")
    parser.add_argument("--period", type=float, default=0.4, help="seconds of one stop/resume cycle")
    parser.add_argument("--modes", default="async,sync,backup",
                        help="which of async, sync (no backup worker), backup (one backup worker)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    modes = {MODE_KEYS[key]: MODES[MODE_KEYS[key]] for key in args.modes.split(",")}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_sync_") as tmp:
        for name, mode_args in modes.items():
            for slow in (False, True):
                result = trial(pathlib.Path(tmp), f"{name}{' slow' if slow else ''}", mode_args, slow, args)
                result["mode"] = name
                print(f"{name}, {'worker:1 slowed' if slow else 'all at full speed'}: "
                      f"{result['steps_per_sec']:.1f} global steps/s", flush=True)
                results.append(result)
    rows = []
    for name in modes:
        fast, slow = (next(r for r in results if r["mode"] == name and r["slow_worker"] == s) for s in (False, True))
        rows.append([name, fmt(fast["steps_per_sec"]), fmt(slow["steps_per_sec"]),
                     fmt(slow["steps_per_sec"] / fast["steps_per_sec"], 2)])
    print(f"\nchief + 2 workers + ps, {args.model}; worker:1 runs {args.duty:.0%} of every {args.period} s "
          f"when slowed; steps/s over {args.window_secs:.0f} s")
    print(format_table(rows, ["mode", "steps/s", f"steps/s, {SLOW_TASK} slowed", "ratio"], left=1))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
