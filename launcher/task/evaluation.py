"""The evaluator: scores every new checkpoint on the model's whole eval set, beside training, never in its way.

It is not part of the training cluster (TensorFlow's convention): it starts no server and only reads
checkpoints, as `tf.train.checkpoints_iterator` finds them. Metrics go to TensorBoard under
`<model_dir>/eval` and to the launcher as status lines. It exits once it has scored a checkpoint at the
target step (and exported it for serving), so a run is complete only when its final checkpoint has a score.

The eval graph is built once and finalized: scoring the hundredth checkpoint costs what the first did.
Each checkpoint gets a fresh session on that graph, as Estimator's evaluate did, because that is what
restarts every input pipeline from its beginning, one-shot iterators included (they cannot be
re-initialised in a session that has used them); the local-variable initialiser then zeroes the metrics.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from launcher.cluster import exit_codes, metric_rule, status
from launcher.cluster.errors import UserError
from launcher.model_api import EVAL, Model
from launcher.task import eval_flags, hooked_run, hooks, serving_export
from launcher.task.best_checkpoint import BestCheckpoint
from launcher.cluster.metric_rule import MetricRule
from launcher.cluster.stop_signals import StopRequest
from launcher.task.early_stopping import EarlyStopping

EVAL_DIR = "eval"

# Ops that read an input which can end: with none of them, every run of the eval graph sees the same
# (or a fresh random) batch, one run is the whole eval set, and waiting for OutOfRangeError would be forever.
_INPUT_READS = frozenset({
    "IteratorGetNext", "IteratorGetNextSync", "IteratorGetNextAsOptional", "QueueDequeueV2",
    "QueueDequeueManyV2", "QueueDequeueUpToV2", "ReaderReadV2", "ReaderReadUpToV2"})


def _metrics(model: Model) -> dict:
    metrics = dict(model.eval_metrics)
    metrics.setdefault("loss", tf.compat.v1.metrics.mean(model.loss))
    return metrics


def _batch_limit(graph: tf.Graph, eval_steps: Optional[int]) -> Optional[int]:
    if eval_steps is not None:
        return eval_steps
    if any(op.type in _INPUT_READS for op in graph.get_operations()):
        return None  # until OutOfRangeError
    logging.info("the eval graph reads no input pipeline: one batch per checkpoint")
    return 1


class Scorer:
    """The eval graph, built once; `score` runs a checkpoint over the eval set in a session of its own."""

    def __init__(self, build: Callable[[str], Model], eval_steps: Optional[int],
                 keep_best: Optional[MetricRule], model_dir: str, also_needs: Optional[MetricRule] = None):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._global_step = tf.compat.v1.train.get_or_create_global_step()
            model = build(EVAL)
            metrics = _metrics(model)
            for option, rule in (("keep_best", keep_best), ("early_stop", also_needs)):
                if rule is not None and rule.metric not in metrics:
                    raise UserError(f"--{option}={rule}: the model has no metric {rule.metric!r} "
                                    f"(it has {', '.join(sorted(metrics))})")
            self._values = {name: value for name, (value, _) in metrics.items()}
            self._update = tf.group(*(op for _, op in metrics.values()))
            # Only what the eval graph has: a training checkpoint also holds optimizer slots.
            self._saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
            self.best = BestCheckpoint(model_dir, keep_best) if keep_best else None
            # Metric accumulators and lookup tables: what a fresh session must set up before the first batch.
            self._local_init = tf.group(tf.compat.v1.local_variables_initializer(),
                                        tf.compat.v1.tables_initializer())
            self._batches = _batch_limit(self.graph, eval_steps)
            # The model's evaluation_hooks: begin() once, here, while the graph takes new ops.
            self._hooks = hooked_run.HookedRuns(hooks.checked(model, "evaluation_hooks"))
            self._hooks.begin()
        self.graph.finalize()

    def score(self, path: str) -> dict:
        """{"step": global step, "batches": batches run, "metrics": {name: value}} of the checkpoint `path`."""
        with tf.compat.v1.Session(graph=self.graph) as session:
            self._saver.restore(session, path)
            session.run(self._local_init)
            self._hooks.session_created(session)
            batches = 0
            while self._batches is None or batches < self._batches:
                try:
                    _, stop = self._hooks.run(session, self._update)
                except tf.errors.OutOfRangeError:
                    break
                batches += 1
                if stop:
                    break  # a hook's request, as StopAfterNEvalsHook makes
            if batches == 0:
                logging.warning("the eval input yielded no batch: metrics of an empty set")
            self._hooks.end(session)
            step, values = session.run([self._global_step, self._values])
            step, metrics = int(step), {k: float(v) for k, v in values.items()}
            if self.best is not None:
                self.best.offer(session, step, metrics)
        return {"step": step, "batches": batches, "metrics": metrics}


def _export(serving: serving_export.ServingGraph, scorer: Scorer, final_path: str, final_step: int,
            model_dir: str) -> None:
    """The best checkpoint (with --keep_best) or the final one, as a SavedModel."""
    path, step = final_path, final_step
    if scorer.best is not None and scorer.best.path is not None:
        path, step = scorer.best.path, scorer.best.score["step"]
    serving_export.export(serving, path, model_dir, step)


def run(model_dir: str, build: Callable[[str], Model], last_step: int, stop: StopRequest,
        poll_secs: float = 1.0, eval_steps: Optional[int] = None, keep_best: Optional[str] = None) -> int:
    """Score checkpoints as they appear until one at `last_step` has been scored, then export it.

    `eval_steps` and `keep_best` default to the evaluator's flags (`eval_flags`)."""
    eval_steps = eval_steps if eval_steps is not None else eval_flags.EVAL_STEPS.value
    try:
        rule = eval_flags.parse_keep_best(keep_best if keep_best is not None else eval_flags.KEEP_BEST.value)
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        stop_rule = metric_rule.parse(eval_flags.EARLY_STOP.value, "early_stop")
    except ValueError as e:
        raise UserError(str(e)) from None
    scorer = Scorer(build, eval_steps, rule, model_dir, also_needs=stop_rule)
    early = EarlyStopping(stop_rule, eval_flags.PATIENCE.value) if stop_rule else None
    serving = serving_export.serving_graph(build)
    with tf.Graph().as_default():  # v1's FileWriter refuses eager mode; it adds nothing to any graph
        writer = tf.compat.v1.summary.FileWriter(os.path.join(model_dir, EVAL_DIR))
    try:
        for path in tf.train.checkpoints_iterator(model_dir, min_interval_secs=poll_secs):
            started = time.monotonic()
            try:
                scored = scorer.score(path)
            except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
                # Deleted by max_to_keep meanwhile, or being written: the next one will do.
                logging.warning("could not score %s: %s", path, type(e).__name__)
                continue
            step, metrics = scored["step"], scored["metrics"]
            writer.add_summary(tf.compat.v1.Summary(value=[
                tf.compat.v1.Summary.Value(tag=name, simple_value=value) for name, value in metrics.items()]),
                step)
            writer.flush()
            logging.info("step %d: %s (%d batches, %.3f s)", step,
                         ", ".join(f"{k} = {v:.6g}" for k, v in metrics.items()), scored["batches"],
                         time.monotonic() - started)
            status.emit(status.EVAL, step=step, metrics=metrics)
            reason = early.update(step, metrics) if early and step < last_step else None
            if reason is not None:
                logging.info("stopping training early at step %d: %s", step, reason)
                status.emit(status.EARLY_STOP, step=step, reason=reason)
            if step >= last_step or reason is not None:
                if serving is not None:
                    _export(serving, scorer, path, step, model_dir)
                break
    finally:
        writer.close()
    return exit_codes.OK
