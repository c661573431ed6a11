"""local2 scaled from 1 to 3 workers mid-run (`launcher scale`, docs/elastic.md): global steps/s before and
after, from the run's own record.

One `launcher run --spec local2` (chief, one worker, one ps) trains --model for --before seconds after its
first step; then `launcher scale MODEL_DIR --workers 3`; once both added workers have taken their first
step (run.json's `first_step`), --after more seconds; then the run is stopped (SIGINT: the chief saves).
The rates come from run.json's `global_step_series` (about one sample a second): before = the last
--before seconds ahead of the scale request, after = the window that starts at the added workers' first
steps. Prints both and their ratio. On a 2-core machine the added workers share the cores with the others
(and with whatever else runs): the ratio says what scaling buys there, not on separate hosts.

`--bed` (root) runs the same on a Ray cluster of 3 hosts of the test bed (tests/hostbed.py; Ray's
spread placement puts the added workers on hosts of their own): the processes are separate there, the
cores are still the same two.

    PYTHONPATH=. python scripts/bench_scale.py [--model launcher.models.mlp] [--before 40] [--after 40] [--bed]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Iterator

ROOT = pathlib.Path(__file__).resolve().parents[1]


def rate(series: list, t0: float, t1: float) -> float:
    window = [(t, s) for t, s in series if t0 <= t <= t1]
    if len(window) < 2:
        raise SystemExit(f"too few samples between {t0} and {t1}: {window}")
    (a, sa), (b, sb) = window[0], window[-1]
    return (sb - sa) / (b - a)


@contextlib.contextmanager
def local(model_dir: str, model: str) -> Iterator[tuple[subprocess.Popen, Callable[[list[str]], str]]]:
    """The run on this machine, and how to run `launcher scale` beside it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = open(os.path.join(model_dir, "launcher.out"), "w")
    run = subprocess.Popen([sys.executable, "-m", "launcher", "run", "--spec", "local2", "--model", model,
                            "--model_dir", model_dir, "--train_steps", "100000000"],
                           stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=str(ROOT))

    def scale(args: list[str]) -> str:
        done = subprocess.run([sys.executable, "-m", "launcher", "scale", *args], capture_output=True, text=True,
                              env=env, cwd=str(ROOT))
        return done.stdout.strip() or done.stderr.strip()

    yield run, scale


@contextlib.contextmanager
def on_bed(model_dir: str, model: str) -> Iterator[tuple[subprocess.Popen, Callable[[list[str]], str]]]:
    """The run on a 3-host Ray cluster of the test bed, launched from its first host."""
    sys.path[:0] = [str(ROOT / "tests")]
    import hostbed
    import raybed

    reason = hostbed.unavailable()
    if reason:
        raise SystemExit(f"error: {reason}")
    with hostbed.HostBed(3) as bed:
        cluster = raybed.RayCluster(bed, cpus_per_node=2).start()
        try:
            env = dict(cluster.env(), PYTHONUNBUFFERED="1")
            out = open(os.path.join(model_dir, "launcher.out"), "w")
            run = bed[1].popen([sys.executable, "-m", "launcher", "run", "--backend", "ray", "--ray_address",
                                cluster.address, "--ray_cpus_per_task", "0.5", "--spec", "local2", "--model", model,
                                "--model_dir", model_dir, "--train_steps", "100000000"],
                               env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)

            def scale(args: list[str]) -> str:
                done = bed[1].run([sys.executable, "-m", "launcher", "scale", *args], env=env, check=False)
                return done.stdout.strip() or done.stderr.strip()

            try:
                yield run, scale
            finally:
                if run.poll() is None:
                    run.send_signal(signal.SIGINT)
                    run.wait(300)
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="launcher.models.mlp")
    parser.add_argument("--before", type=float, default=40.0)
    parser.add_argument("--after", type=float, default=40.0)
    parser.add_argument("--bed", action="store_true", help="on a Ray cluster of 3 hosts of the test bed (root)")
    args = parser.parse_args()
    model_dir = tempfile.mkdtemp(prefix="bench_scale.")
    with (on_bed if args.bed else local)(model_dir, args.model) as (run, scale):
        try:
            logs = os.path.join(model_dir, "logs", "worker-0.log")
            while not (os.path.exists(logs) and "step = " in open(logs, errors="replace").read()):
                if run.poll() is not None:
                    raise SystemExit(f"the run ended early; see {model_dir}/launcher.out")
                time.sleep(0.5)
            time.sleep(args.before + 5)
            asked = time.time()
            print(f"scale: {scale([model_dir, '--workers', '3'])}")
            added = [os.path.join(model_dir, "logs", f"worker-{i}.log") for i in (1, 2)]
            while not all(os.path.exists(p) and "step = " in open(p, errors="replace").read() for p in added):
                if run.poll() is not None:
                    raise SystemExit(f"the run ended early; see {model_dir}/launcher.out")
                time.sleep(0.5)
            joined = time.time()
            time.sleep(args.after + 2)
        finally:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
                run.wait(300)
    record = json.load(open(os.path.join(model_dir, "run.json")))["runs"][-1]
    series = record["global_step_series"]
    before = rate(series, asked - args.before, asked)
    after = rate(series, joined, joined + args.after)
    where = "3 hosts of the test bed (Ray)" if args.bed else "this machine"
    print(f"model {args.model} on {where}; join took {joined - asked:.1f} s (request to both added workers' "
          f"first step)")
    print(f"1 worker : {before:.1f} global steps/s")
    print(f"3 workers: {after:.1f} global steps/s")
    print(f"ratio    : {after / before:.2f}  (machine: {os.cpu_count()} cores, shared with other jobs)")
    print(f"model dir: {model_dir}")


if __name__ == "__main__":
    main()
