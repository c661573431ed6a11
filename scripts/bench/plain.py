"""The baseline: the same model trained in one plain process, with no cluster and no launcher.

The child is this benchmark's own entry point in its hidden child mode (`--plain_child MODEL`), so that
its figures come from a fresh interpreter, timed from its launch and sampled like the launcher's tasks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from bench.processes import kill_all, start
from bench.rss import RssSampler
from bench.trials import BenchmarkError
from launcher import model_api

# The entry point beside this package; its --plain_child mode calls plain_child().
ENTRY_POINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmark.py")


@dataclasses.dataclass
class PlainResult:
    model: str
    train_steps: int
    warmup_steps: int
    first_step_secs: float
    steps_per_sec: float
    rss_mb: float


def warmup_steps(train_steps: int) -> int:
    """Steps before the rate is timed: a fifth of the run, 1 to 100."""
    return max(1, min(100, train_steps // 5))


def plain_child(model: str, train_steps: int, launched_at: float) -> None:
    """The plain run itself (in a child process): prints its figures as one JSON line."""
    build = model_api.load(model)  # imports TensorFlow, and defines the model's flags
    import tensorflow as tf
    from absl import flags

    flags.FLAGS(["plain"])  # the model's flags at their defaults, as the launcher's tasks have them
    warmup = min(warmup_steps(train_steps), train_steps - 1)
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        model_ = build(model_api.TRAIN)
        train_op = model_.optimizer.minimize(model_.loss, global_step=global_step)
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=None, save_checkpoint_secs=None, save_summaries_steps=None,
                save_summaries_secs=None, log_step_count_steps=None) as session:
            session.run(train_op)
            first_step_secs = time.time() - launched_at
            for _ in range(warmup - 1):
                session.run(train_op)
            timed_from = time.perf_counter()
            for _ in range(train_steps - warmup):
                session.run(train_op)
            steps_per_sec = (train_steps - warmup) / (time.perf_counter() - timed_from)
    print(json.dumps({"first_step_secs": round(first_step_secs, 3), "steps_per_sec": steps_per_sec,
                      "warmup_steps": warmup}))


def run_plain(model: str, train_steps: int, timeout_secs: float) -> PlainResult:
    """`plain_child` in a subprocess of this benchmark, sampled like the launcher's tasks."""
    argv = [sys.executable, ENTRY_POINT, "--plain_child", model,
            f"--train_steps={train_steps}", f"--launched_at={time.time()!r}"]
    proc = start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with RssSampler(proc.pid, "plain") as sampler:
            try:
                out, err = proc.communicate(timeout=timeout_secs)
            except subprocess.TimeoutExpired:
                raise BenchmarkError(f"plain {model}: no end after {timeout_secs:.0f} s") from None
        if proc.returncode != 0:
            raise BenchmarkError(f"plain {model}: exit code {proc.returncode}:\n{err[-2000:]}")
        figures = json.loads(out.strip().splitlines()[-1])
        return PlainResult(model=model, train_steps=train_steps, warmup_steps=figures["warmup_steps"],
                           first_step_secs=figures["first_step_secs"], steps_per_sec=figures["steps_per_sec"],
                           rss_mb=round(max(sampler.peak_mb.values()), 1))
    finally:
        kill_all([proc])
