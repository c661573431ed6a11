"""The launcher against a hand-rolled cluster on the same graph: steps/s in training, whole-job wall time.

The hand-rolled baseline (`handrolled_task.py` in the anchors directory, default ../shared/anchors beside
the repository) is what a careful user writes without this project: TF's own creators, StopAtStepHook,
CheckpointSaverHook and `minimize(loss, global_step)`; `anchor_model.py` there is the same graph as a
launcher model. Both run local2's shape (ps, chief, worker) to the same target, alternately, so a slower
machine moment hits both.

Figures, the same definition for both:
- training steps/s: global steps trained / (end of training - chief's first session): for the launcher
  from run.json (its chief attempt's first session; the global step series reaching the target), for the
  baseline from the chief's "ready after" and "done ... secs" lines (its loop's end, before the final save);
- wall s: first process start to the last training process's exit (ps tasks stopped afterwards).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import time

from bench.launcher_process import launcher_argv, running_launcher, trial_dir
from bench.processes import kill_all, start
from bench.trials import BenchmarkError, read_runs
from launcher.cluster import spec as spec_lib
from launcher.launch import ports

DONE_LINE = re.compile(r"^chief done local steps (\d+) gs (\d+) secs ([\d.]+)")
READY_LINE = re.compile(r"^chief ready after ([\d.]+) gs (\d+)")


@dataclasses.dataclass
class AnchorResult:
    who: str  # "launcher" or "hand-rolled"
    train_steps: int
    wall_secs: float
    steps_per_sec: float


def _env(anchors: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([anchors, os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_launcher_anchor(anchors: str, train_steps: int, timeout_secs: float) -> AnchorResult:
    with trial_dir("bench-anchor-") as trial:
        argv = launcher_argv("local2", "anchor_model", trial.model_dir, train_steps,
                             "--chief_flags=--save_checkpoint_steps=500")
        started = time.monotonic()
        with running_launcher(argv, trial.log_path, env=_env(anchors)) as proc:
            code = proc.wait(timeout_secs)
            wall = time.monotonic() - started
        if code != 0:
            raise BenchmarkError(f"launcher on the anchor model exited {code}")
        run = read_runs(trial.model_dir)[-1]
        chief = next(t for t in run["tasks"] if t["job"] == "chief")["attempts"][-1]
        first = chief["sessions"][0]
        # The end of training, as the baseline's "done" line: the target reached, before the final save.
        trained = next((t for t, step in run["global_step_series"] if step >= run["global_step_end"]), chief["ended"])
        rate = (run["global_step_end"] - first["step"]) / (trained - first["time"])
        return AnchorResult("launcher", train_steps, round(wall, 2), round(rate, 1))


def run_handrolled(anchors: str, train_steps: int, timeout_secs: float) -> AnchorResult:
    spec = ports.resolve_local(spec_lib.load("local2"))
    cluster = json.dumps(spec.cluster_dict(training_only=True))
    program = os.path.join(anchors, "handrolled_task.py")
    with trial_dir("bench-handrolled-") as trial:
        procs = {}
        try:
            started = time.monotonic()
            for task in spec.tasks():
                procs[task.name] = start([sys.executable, program, cluster, task.job, str(task.index),
                                          trial.model_dir, str(train_steps)], env=_env(anchors),
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            out, _ = procs["chief:0"].communicate(timeout=timeout_secs)
            procs["worker:0"].wait(timeout_secs)
            wall = time.monotonic() - started
        finally:
            kill_all(procs.values())
        ready = done = None
        for line in out.splitlines():
            done = DONE_LINE.match(line) or done
            ready = READY_LINE.match(line) or ready
        if not (ready and done):
            raise BenchmarkError(f"hand-rolled chief printed no ready/done line:\n{out[-1000:]}")
        steps = int(done.group(2)) - int(ready.group(2))
        rate = steps / (float(done.group(3)) - float(ready.group(1)))
        return AnchorResult("hand-rolled", train_steps, round(wall, 2), round(rate, 1))


def run_anchor_comparison(anchors: str, train_steps: int, repeat: int, timeout_secs: float) -> list[AnchorResult]:
    if not os.path.isfile(os.path.join(anchors, "handrolled_task.py")):
        raise BenchmarkError(f"--anchors {anchors!r}: no handrolled_task.py there")
    results = []
    for _ in range(repeat):
        results.append(run_handrolled(anchors, train_steps, timeout_secs))
        results.append(run_launcher_anchor(anchors, train_steps, timeout_secs))
    return results


def anchor_report(results: list[AnchorResult]) -> str:
    lines = ["launcher vs hand-rolled (local2, anchor graph), alternating:",
             "| run | steps | launcher steps/s | hand-rolled steps/s | ratio | launcher wall s | hand-rolled wall s | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    pairs = list(zip(results[0::2], results[1::2]))
    for i, (hand, ours) in enumerate(pairs, 1):
        lines.append(f"| {i} | {ours.train_steps} | {ours.steps_per_sec} | {hand.steps_per_sec} | "
                     f"{ours.steps_per_sec / hand.steps_per_sec:.2f} | {ours.wall_secs} | {hand.wall_secs} | "
                     f"{ours.wall_secs / hand.wall_secs:.2f} |")
    if len(pairs) > 1:  # one trial swings by 20% on a shared machine: the medians are the figures to quote
        ours_rate, hand_rate = statistics.median(p[1].steps_per_sec for p in pairs), statistics.median(
            p[0].steps_per_sec for p in pairs)
        ours_wall, hand_wall = statistics.median(p[1].wall_secs for p in pairs), statistics.median(
            p[0].wall_secs for p in pairs)
        lines.append(f"| median | {pairs[0][1].train_steps} | {ours_rate:.1f} | {hand_rate:.1f} | "
                     f"{ours_rate / hand_rate:.2f} | {ours_wall:.2f} | {hand_wall:.2f} | {ours_wall / hand_wall:.2f} |")
    return "\n".join(lines)
