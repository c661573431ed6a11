"""Hang benchmark: for each fault, seconds from the fault to the launcher's verdict, whether the culprit was
named right, and the run's outcome; beside it, what the same fault does to a plain hand-rolled TensorFlow
cluster (TensorFlow's own session creators): how long until anything is said about it.

    python scripts/hang_benchmark.py [--hang_secs 15] [--baseline_secs 90] [--cases worker,ps,chief,input]

Runs real clusters on loopback, one at a time; a few minutes per case on a loaded machine. Needs psutil
(the test extra). Every process it starts is killed before it returns.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil

REPO = pathlib.Path(__file__).resolve().parents[1]
HANDROLLED = pathlib.Path("/work/shared/anchors/handrolled_task.py")
SLOW = "--step_sleep_secs=0.05"
ABOUT_A_FAULT = re.compile(r"(?i)error|unavailable|deadline|still waiting|connect|timed? ?out|socket|abort|hang")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO), env.get("PYTHONPATH", "")])
    return env


def _task_pids(root: int) -> dict[str, int]:
    found = {}
    for child in psutil.Process(root).children(recursive=True):  # forked by its warm process, or cold
        try:
            task = json.loads(child.environ().get("TF_CONFIG", "{}")).get("task")
        except (psutil.Error, ValueError):
            continue
        if task:
            found[f"{task['type']}:{task['index']}"] = child.pid
    return found


def _checkpoints(model_dir: pathlib.Path) -> list[int]:
    return [int(p.name[len("model.ckpt-"):-len(".index")]) for p in model_dir.glob("model.ckpt-*.index")]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def launcher_case(case: str, hang_secs: float, work: pathlib.Path) -> dict:
    model_dir = work / f"launcher-{case}"
    spec = work / "two_workers.json"
    spec.write_text('{"chief": ["localhost:0"], "worker": ["localhost:0", "localhost:0"], "ps": ["localhost:0"]}')
    victim = {"worker": "worker:0", "ps": "ps:0", "chief": "chief:0", "input": "worker:1"}[case]
    worker_flags = SLOW + (" --block_input_on=worker:1 --block_after_steps=100" if case == "input" else "")
    argv = [sys.executable, "-m", "launcher", "run", "--spec", str(spec), "--model_dir", str(model_dir),
            "--model", "models.hang", "--train_steps", "3000", "--hang_secs", str(hang_secs),
            f"--chief_flags={SLOW} --save_checkpoint_steps=50", f"--worker_flags={worker_flags}",
            "--ps_flags=--recovery_deadline_secs=120"]
    out = open(work / f"launcher-{case}.out", "w")
    proc = subprocess.Popen(argv, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: any(s >= 50 for s in _checkpoints(model_dir)), 300)
        if case == "input":
            marker = model_dir / "blocked-worker-1"
            _wait(marker.exists, 300)
            fault = marker.stat().st_mtime
        else:
            os.kill(_task_pids(proc.pid)[victim], signal.SIGSTOP)
            fault = time.time()
        code = proc.wait(900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
    run = json.loads((model_dir / "run.json").read_text())["runs"][-1]
    hang = (run.get("hangs") or [None])[0]
    return {"case": case, "victim": victim,
            "verdict_secs": round(hang["detected"] - fault, 1) if hang else None,
            "printed_secs": round(hang["time"] - fault, 1) if hang else None,
            "named_right": bool(hang) and hang["culprits"] == [victim],
            "outcome": f"{run['outcome']} (exit {code}), step {run['global_step_end']}",
            "verdict": hang["verdict"] if hang else None}


def handrolled_case(case: str, watch_secs: float, work: pathlib.Path) -> dict:
    """The same fault on the anchor's plain TF cluster: the first line any task prints about it."""
    import portpicker

    ports = [portpicker.pick_unused_port() for _ in range(4)]
    cluster = {"chief": [f"localhost:{ports[0]}"], "worker": [f"localhost:{ports[1]}", f"localhost:{ports[2]}"],
               "ps": [f"localhost:{ports[3]}"]}
    ckpt = work / f"handrolled-{case}"
    lines: list[tuple[float, str, str]] = []
    procs = {}
    for job, n in (("ps", 1), ("chief", 1), ("worker", 2)):
        for i in range(n):
            p = subprocess.Popen([sys.executable, str(HANDROLLED), json.dumps(cluster), job, str(i), str(ckpt),
                                  "100000000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
            procs[f"{job}:{i}"] = p
            threading.Thread(target=lambda p=p, name=f"{job}:{i}": [lines.append((time.time(), name, line.rstrip()))
                                                                     for line in p.stdout], daemon=True).start()
    victim = {"worker": "worker:0", "ps": "ps:0", "chief": "chief:0", "input": None}[case]
    try:
        _wait(lambda: sum(" gs " in l for _, _, l in lines) >= 3, 300)
        if victim is None:
            return {"case": case, "first_said_secs": None, "said": "(no blocking input in the anchor model)"}
        os.kill(procs[victim].pid, signal.SIGSTOP)
        fault = time.time()
        time.sleep(watch_secs)
        # What could tell a person about the fault: errors, timeouts, waiting, connections; not the periodic
        # "gs" lines of the tasks that go on, nor TensorFlow's deprecation notices on checkpoint rotation.
        said = [(t, name, l) for t, name, l in lines if t > fault and ABOUT_A_FAULT.search(l)
                and "deprecat" not in l]
        return {"case": case, "first_said_secs": round(said[0][0] - fault, 1) if said else None,
                "said": f"{said[0][1]}: {said[0][2][:100]}" if said else f"nothing in {watch_secs:.0f} s"}
    finally:
        for p in procs.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hang_secs", type=float, default=15)
    parser.add_argument("--baseline_secs", type=float, default=90)
    parser.add_argument("--cases", default="worker,ps,chief,input")
    parser.add_argument("--no_baseline", action="store_true")
    parser.add_argument("--only_baseline", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hang-bench-") as work:
        for case in args.cases.split(","):
            row = {"case": case, "verdict_secs": None, "printed_secs": None, "named_right": None,
                   "outcome": "not run"} if args.only_baseline else launcher_case(case, args.hang_secs,
                                                                                 pathlib.Path(work))
            if not args.no_baseline and HANDROLLED.exists():
                row["handrolled"] = handrolled_case(case, args.baseline_secs, pathlib.Path(work))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"\n--hang_secs {args.hang_secs:g}; cluster: chief, 2 workers, ps; linear model, 0.05 s steps\n")
    print("| fault | fault -> verdict (s) | printed (s) | culprit named right | outcome | hand-rolled TF cluster |")
    print("| --- | --- | --- | --- | --- | --- |")
    names = {"worker": "SIGSTOP worker:0", "ps": "SIGSTOP ps:0", "chief": "SIGSTOP chief:0",
             "input": "input blocks on worker:1"}
    for row in rows:
        base = row.get("handrolled", {})
        base_text = (f"first word after {base['first_said_secs']} s: {base['said']}" if base.get("first_said_secs")
                     is not None else base.get("said", "not run"))
        print(f"| {names[row['case']]} | {row['verdict_secs']} | {row['printed_secs']} | "
              f"{ {True: 'yes', False: 'NO', None: '-'}[row['named_right']]} | {row['outcome']} | {base_text} |")


if __name__ == "__main__":
    main()
