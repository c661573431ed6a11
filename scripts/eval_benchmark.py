"""Benchmark of the evaluator: seconds to score one checkpoint over the whole eval set, first vs later.

The evaluator builds its eval graph once, finalizes it, and scores each checkpoint in a fresh session on
it (launcher.task.evaluation.Scorer). This script writes --checkpoints checkpoints of a model (a few
training steps apart, in one plain process: no cluster), then scores them round-robin --scores times with
the evaluator's own Scorer, and prints the seconds of the 1st, 2nd, 10th, ... and last scoring, the median
of the first and last tenth, and the eval graph's op count before and after (a finalized graph cannot
grow). For comparison, "unfinalized" repeats the evaluator's former loop, which called
`local_variables_initializer()` per checkpoint, and shows its graph and time growing.

    python scripts/eval_benchmark.py                                   # launcher.models.digits, 100 scores
    python scripts/eval_benchmark.py --model launcher.models.mlp --scores 200

The digits model needs scikit-learn and TF_USE_LEGACY_KERAS=1 (set here when not set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from absl import flags, logging  # noqa: E402

from launcher import model_api  # noqa: E402
from launcher.model_api import EVAL, TRAIN  # noqa: E402
from launcher.task import evaluation  # noqa: E402


def write_checkpoints(build, model_dir: str, count: int, steps_between: int) -> list[str]:
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        model = build(TRAIN)
        train = model.optimizer.minimize(model.loss, global_step=global_step)
        saver = tf.compat.v1.train.Saver(max_to_keep=None)
        paths = []
        with tf.compat.v1.Session() as session:
            session.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.local_variables_initializer()])
            for _ in range(count):
                for _ in range(steps_between):
                    session.run(train)
                paths.append(saver.save(session, os.path.join(model_dir, "model.ckpt"), global_step=global_step))
    return paths


def score_finalized(build, model_dir: str, paths: list[str], scores: int) -> tuple[list[float], int, int]:
    scorer = evaluation.Scorer(build, None, None, model_dir)
    ops_before = len(scorer.graph.get_operations())
    secs = []
    for i in range(scores):
        started = time.perf_counter()
        scorer.score(paths[i % len(paths)])
        secs.append(time.perf_counter() - started)
    return secs, ops_before, len(scorer.graph.get_operations())


def score_unfinalized(build, paths: list[str], scores: int) -> tuple[list[float], int, int]:
    """The former evaluator: one session, a new local_variables_initializer() per checkpoint, one batch."""
    with tf.Graph().as_default() as graph:
        global_step = tf.compat.v1.train.get_or_create_global_step()
        metrics = evaluation._metrics(build(EVAL))
        update = tf.group(*(op for _, op in metrics.values()))
        values = {name: value for name, (value, _) in metrics.items()}
        saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
        ops_before = len(graph.get_operations())
        secs = []
        with tf.compat.v1.Session() as session:
            for i in range(scores):
                started = time.perf_counter()
                saver.restore(session, paths[i % len(paths)])
                session.run(tf.compat.v1.local_variables_initializer())
                try:
                    session.run(update)
                except tf.errors.OutOfRangeError:
                    print(f"unfinalized: the eval input ran out at scoring #{i + 1}: a one-shot iterator is "
                          f"never re-initialised in one session")
                    break
                session.run([values, global_step])
                secs.append(time.perf_counter() - started)
        return secs, ops_before, len(graph.get_operations())


def report(name: str, secs: list[float], ops_before: int, ops_after: int) -> None:
    if not secs:
        return
    tenth = max(1, len(secs) // 10)
    marks = [m for m in (1, 2, 10, len(secs) // 2, len(secs)) if m <= len(secs)]
    shown = "  ".join(f"#{m} {secs[m - 1]:.3f}" for m in marks)
    print(f"{name:12} {shown}  | median first tenth {statistics.median(secs[:tenth]):.3f}  "
          f"last tenth {statistics.median(secs[-tenth:]):.3f}  | graph ops {ops_before} -> {ops_after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="launcher.models.digits")
    parser.add_argument("--checkpoints", type=int, default=5)
    parser.add_argument("--steps_between", type=int, default=20)
    parser.add_argument("--scores", type=int, default=100)
    parser.add_argument("--skip_unfinalized", action="store_true")
    args = parser.parse_args()
    build = model_api.load(args.model)
    flags.FLAGS(["eval_benchmark"])  # the models' flags, at their defaults
    logging.set_verbosity(logging.WARNING)
    with tempfile.TemporaryDirectory() as model_dir:
        paths = write_checkpoints(build, model_dir, args.checkpoints, args.steps_between)
        print(f"{args.model}: {args.scores} scorings of {len(paths)} checkpoints, seconds per checkpoint")
        report("evaluator", *score_finalized(build, model_dir, paths, args.scores))
        if not args.skip_unfinalized:
            report("unfinalized", *score_unfinalized(build, paths, args.scores))


if __name__ == "__main__":
    main()
