"""The evaluator: scores every new checkpoint on the model's eval data, beside training, never in its way.

It is not part of the training cluster (TensorFlow's convention): it starts no server and only reads
checkpoints, as `tf.train.checkpoints_iterator` finds them. Metrics go to TensorBoard under
`<model_dir>/eval` and to the launcher as status lines. It exits once it has scored a checkpoint at the
target step, so a run is complete only when its final checkpoint has a score.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from launcher.cluster import exit_codes, status
from launcher.model_api import EVAL, Model
from launcher.cluster.stop_signals import StopRequest

EVAL_DIR = "eval"


def _metrics(model: Model) -> dict:
    metrics = dict(model.eval_metrics)
    metrics.setdefault("loss", tf.compat.v1.metrics.mean(model.loss))
    return metrics


def _score(session: tf.compat.v1.Session, saver, path: str, values: dict, update, global_step) -> dict:
    saver.restore(session, path)
    session.run(tf.compat.v1.local_variables_initializer())
    session.run(update)
    scored = session.run(values)
    return {"step": int(session.run(global_step)), **{k: float(v) for k, v in scored.items()}}


def run(model_dir: str, build: Callable[[str], Model], last_step: int, stop: StopRequest,
        poll_secs: float = 1.0) -> int:
    """Score checkpoints as they appear until one at `last_step` has been scored."""
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        model = build(EVAL)
        metrics = _metrics(model)
        values = {name: value for name, (value, _) in metrics.items()}
        update = tf.group(*(op for _, op in metrics.values()))
        # Only what the eval graph has: a training checkpoint also holds optimizer slots.
        saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
        writer = tf.compat.v1.summary.FileWriter(os.path.join(model_dir, EVAL_DIR))
        last: Optional[dict] = None
        with tf.compat.v1.Session() as session:
            for path in tf.train.checkpoints_iterator(model_dir, min_interval_secs=poll_secs):
                try:
                    last = _score(session, saver, path, values, update, global_step)
                except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
                    # Deleted by max_to_keep meanwhile, or being written: the next one will do.
                    logging.warning("could not score %s: %s", path, type(e).__name__)
                    continue
                step = last.pop("step")
                writer.add_summary(tf.compat.v1.Summary(value=[
                    tf.compat.v1.Summary.Value(tag=name, simple_value=value) for name, value in last.items()]),
                    step)
                writer.flush()
                logging.info("step %d: %s", step, ", ".join(f"{k} = {v:.6g}" for k, v in last.items()))
                status.emit(status.EVAL, step=step, metrics=last)
                if step >= last_step:
                    break
        writer.close()
    return exit_codes.OK
