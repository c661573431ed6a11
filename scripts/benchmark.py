"""Benchmark of the launcher: start-up time, training throughput and memory, against plain TensorFlow.

For each cluster spec (default local1, local2, local4) and each model (default launcher.models.linear and
launcher.models.mlp) this script runs `python -m launcher run` into a fresh temporary model directory and
measures:

- first step: seconds from launch to every task's first training step, i.e. the max (and the min) over
  the chief and workers of `first_step_secs` in run.json. That clock starts when the launcher's CLI module
  is imported (launcher.cli._LAUNCHED, a moment after its interpreter starts), so it includes the launcher's
  own start-up, which is also shown on its own ("pre": launcher process start to its first task process
  start, from the processes' create times; with Ray, the start of Ray's local instance is part of it);
- steps/sec: the median of the chief's "global_step/sec" TensorBoard scalars (written by its
  StepCounterHook every --log_step_count_steps global steps, 100 by default; "-" if the run was too short);
- peak RSS: every process under the launcher is sampled with psutil every 0.2 s; a task is known by the
  TF_CONFIG of its environment. Reported: the max over tasks, the max per role, and the
  launcher process itself.

Side by side, for the same model and number of steps:

- plain: one process of this script, with no cluster and no launcher, builds build("train"), a global step
  and optimizer.minimize(loss, global_step) in a MonitoredTrainingSession without checkpoints or
  summaries: seconds from process launch to its first step, steps/sec after a warm-up, and peak RSS;
- floor: N bare processes (N = tasks of the spec), each only importing TensorFlow and starting a
  tf.distribute.Server of a cluster of that size: seconds from launch until all N have printed "ready".
  No launcher can start its tasks faster than that.

Backends (--backends, default local): each spec and model gets one row per backend. "ray" runs
`launcher run --backend ray` without --ray_address, so the launcher starts (and stops) a local Ray instance,
inside a network namespace with only loopback (`unshare -n`, as tests/test_ray_backend.py does: Ray would
otherwise bind to the machine's routable address), with Ray's temporary directory in the trial's own
directory. Where `unshare -n` (root) or Ray is missing, Ray rows are skipped and the report says why.

With --repeat > 1 the table shows the median of the repeats; --out_json writes every raw figure.

Recovery (--recovery after that table, --recovery_only instead of it): a task SIGKILLed mid-training on
local2 with launcher.models.mlp, one trial per victim (chief:0, worker:0, ps:0) in a fresh model directory.
The run checkpoints every 50 steps and logs "step = N" every 10; once a checkpoint at step 100 or later
exists, the victim is killed, and once it has recovered (a restarted chief or worker logs a step; after a
ps kill, the chief logs a step in a session created after the kill) the launcher gets SIGTERM (it exits
143, preempted) and run.json is read:

- recovery s: kill to the next training step: the restarted victim's first step (run.json), or after a
  ps kill the chief's first session created after the kill (a session start is followed by a step at
  once); "log step s": the same from the first "step =" log line after the kill (a coarser, independent
  clock: the log hook writes every 10 steps of its process);
- respawn s: kill to the start of the victim's next process (how fast the launcher noticed and restarted);
- floor s: one bare process importing TensorFlow and starting a server (`run_floor` on local1), measured
  right after each trial: no restarted task can step sooner;
- step at kill (the highest "step = N" in the chief's and worker's logs), last saved (the newest
  checkpoint), restored from (the step the chief's first post-kill session started at), steps lost (step
  at kill - restored from; 0 when the chief kept its session), restarts per task and exit code.

Run it from the repository (it takes minutes: keep the machine otherwise idle for meaningful figures):

    python scripts/benchmark.py
    python scripts/benchmark.py --specs local1,local2 --models launcher.models.linear --train_steps 300
    python scripts/benchmark.py --repeat 3 --out_json /tmp/bench.json
    python scripts/benchmark.py --specs local2 --models launcher.models.linear --backends local,ray
    python scripts/benchmark.py --recovery_only [--victims ps:0]
    python scripts/benchmark.py --anchor_only --anchor_steps 3000   # against ../shared/anchors (--anchors DIR)

Warm starts (--warm after the table, --warm_only instead of it): cold and warm launches alternated in
one run, against one cold process (import, Server, one step); see bench/warm.py for each figure:

    python scripts/benchmark.py --warm_only --repeat 3

This file is the entry point only; the trials, their figures and the reports are the modules of the
package bench/ beside it (its __init__ lists them).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Sequence

from bench.anchor import anchor_report, run_anchor_comparison
from bench.comparison import (BACKENDS, DEFAULT_MODELS, DEFAULT_SPECS, DEFAULT_TRAIN_STEPS, FALLBACK_TRAIN_STEPS,
                              run_comparison, steps_for)
from bench.out_json import to_json
from bench.plain import plain_child
from bench.recovery import RECOVERY_MODEL, RECOVERY_SPEC, RECOVERY_VICTIMS, run_recoveries
from bench.recovery_report import recovery_report
from bench.report import report
from bench.warm import run_warm_comparison, warm_report


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default=",".join(DEFAULT_SPECS), help="comma-separated spec names or files")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model modules")
    parser.add_argument("--train_steps", type=int, default=None,
                        help="global steps for every model (default: " +
                             ", ".join(f"{m.rsplit('.', 1)[-1]} {n}" for m, n in DEFAULT_TRAIN_STEPS.items()) +
                             f", others {FALLBACK_TRAIN_STEPS})")
    parser.add_argument("--backends", default="local",
                        help="comma-separated: local, ray (--backend ray, a local Ray instance in a loopback-only "
                             "network namespace); one row per backend")
    parser.add_argument("--repeat", type=int, default=1, help="trials of each kind; the table shows medians")
    parser.add_argument("--out_json", default=None, help="write every raw figure to this file")
    parser.add_argument("--timeout_secs", type=float, default=1800.0, help="per trial")
    parser.add_argument("--recovery", action="store_true",
                        help=f"after the table, the recovery benchmark: a task killed mid-training ({RECOVERY_SPEC}, "
                             f"{RECOVERY_MODEL})")
    parser.add_argument("--recovery_only", action="store_true", help="the recovery benchmark alone")
    parser.add_argument("--recovery_model", default=RECOVERY_MODEL,
                        help="the model of the recovery trials (here and in --warm's kills)")
    parser.add_argument("--victims", default=",".join(RECOVERY_VICTIMS),
                        help="comma-separated tasks to kill in the recovery benchmark")
    parser.add_argument("--keep_logs", default=None,
                        help="copy each recovery trial's logs and run.json to DIR/<victim>-<repeat>/")
    parser.add_argument("--warm", action="store_true",
                        help="after the table, warm starts against cold ones, alternated (see bench.warm)")
    parser.add_argument("--warm_only", action="store_true", help="the warm-start comparison alone")
    parser.add_argument("--anchor", action="store_true",
                        help="after the table, the launcher against the hand-rolled anchor cluster (see bench.anchor)")
    parser.add_argument("--anchor_only", action="store_true", help="the anchor comparison alone")
    parser.add_argument("--anchors", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                          "shared", "anchors"),
                        help="directory of handrolled_task.py and anchor_model.py")
    parser.add_argument("--anchor_steps", type=int, default=3000, help="global steps of each anchor trial")
    # internal: the child of bench.plain.run_plain
    parser.add_argument("--plain_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--launched_at", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or (args.train_steps is not None and args.train_steps < 2):
        parser.error("--repeat must be >= 1 and --train_steps >= 2")
    backends = [b for b in args.backends.split(",") if b]
    if not backends or any(b not in BACKENDS for b in backends) or len(set(backends)) != len(backends):
        parser.error(f"--backends: expected some of {', '.join(BACKENDS)}, each once")
    unknown = [v for v in args.victims.split(",") if v and v not in RECOVERY_VICTIMS]
    if unknown or not any(args.victims.split(",")):
        parser.error(f"--victims: expected some of {', '.join(RECOVERY_VICTIMS)}")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the trials' clean-up


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.plain_child:
        plain_child(args.plain_child, steps_for(args.plain_child, args.train_steps), args.launched_at)
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    specs = [s for s in args.specs.split(",") if s]
    models = [m for m in args.models.split(",") if m]
    backends = [b for b in args.backends.split(",") if b]
    if args.recovery_only or args.anchor_only or args.warm_only:
        results: dict[str, list] = {"launcher": [], "plain": [], "floor": [], "errors": []}
    else:
        results = run_comparison(specs, models, args.train_steps, args.repeat, args.timeout_secs, backends)
        print(report(results, specs, models, backends), flush=True)
    if args.recovery or args.recovery_only:
        victims = [v for v in args.victims.split(",") if v]
        results["recovery"] = run_recoveries(victims, args.repeat, args.timeout_secs, results["errors"],
                                             args.keep_logs, model=args.recovery_model)
        print(("\n" if not args.recovery_only else "") + recovery_report(results["recovery"], args.recovery_model))
    if args.warm or args.warm_only:
        results["warm"] = run_warm_comparison(args.repeat, args.timeout_secs, results["errors"], args.recovery_model)
        print("\n" + warm_report(results["warm"]), flush=True)
    if args.anchor or args.anchor_only:
        results["anchor"] = run_anchor_comparison(args.anchors, args.anchor_steps, max(args.repeat, 3),
                                                  args.timeout_secs)
        print("\n" + anchor_report(results["anchor"]), flush=True)
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(to_json(results), f, indent=2)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
