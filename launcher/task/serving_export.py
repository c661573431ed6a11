"""A SavedModel for serving, from a checkpoint: `<model_dir>/export/<step>/`, TensorFlow Serving's layout.

The model's `build(PREDICT)` graph (placeholders in, predictions out, no input pipeline, no optimizer) gets
the checkpoint's variables and one signature, `serving_default`. The version directory is written under a
temporary name and renamed when complete: TensorFlow Serving picks up any numbered directory it sees, so a
half-written one must never carry a number.
"""

from __future__ import annotations

import os
import shutil
import traceback
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from launcher.cluster.checkpoint_names import step_of
from launcher.cluster.errors import UserError
from launcher.model_api import PREDICT, Model, Serving

EXPORT_DIR = "export"
_PLACEHOLDERS = ("Placeholder", "PlaceholderWithDefault")


class ServingGraph:
    """The model's PREDICT graph, built once (at the evaluator's start, so a bad signature shows early)."""

    def __init__(self, graph: tf.Graph, serving: Serving):
        self.graph = graph
        self.serving = serving
        with graph.as_default():
            self._saver = tf.compat.v1.train.Saver()
            self._signature = tf.compat.v1.saved_model.predict_signature_def(
                inputs=dict(serving.inputs), outputs=dict(serving.outputs))
            self._tables = tf.compat.v1.tables_initializer()

    def export(self, checkpoint: str, directory: str) -> None:
        """Write the SavedModel of `checkpoint`'s variables to `directory` (which must not exist)."""
        with tf.compat.v1.Session(graph=self.graph) as session:
            self._saver.restore(session, checkpoint)
            builder = tf.compat.v1.saved_model.Builder(directory)
            builder.add_meta_graph_and_variables(
                session, [tf.saved_model.SERVING],
                signature_def_map={tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: self._signature},
                main_op=self._tables, clear_devices=True, strip_default_attrs=True)
            builder.save()


def _check(serving: Serving) -> None:
    if not serving.inputs or not serving.outputs:
        raise UserError("build(PREDICT): launcher.Serving needs at least one input and one output")
    for name, tensor in serving.inputs.items():
        if not isinstance(tensor, tf.Tensor) or tensor.op.type not in _PLACEHOLDERS:
            raise UserError(f"build(PREDICT): serving input {name!r} must be a tf.compat.v1.placeholder, "
                            f"not {tensor!r}")
    for name, tensor in serving.outputs.items():
        if not isinstance(tensor, tf.Tensor):
            raise UserError(f"build(PREDICT): serving output {name!r} must be a tensor, not {tensor!r}")


def serving_graph(build: Callable[[str], Model]) -> Optional[ServingGraph]:
    """The model's serving graph, or None for a model that declares no `serving` in PREDICT mode."""
    graph = tf.Graph()
    with graph.as_default():
        try:
            model = build(PREDICT)
        except Exception:  # a model written before PREDICT existed may reject the mode: it is not served
            logging.warning("build(%r) failed, so no SavedModel will be exported:\n%s", PREDICT,
                            traceback.format_exc())
            return None
        if not isinstance(model, Model) or model.serving is None:
            logging.info("the model declares no launcher.Serving in PREDICT mode: no SavedModel export")
            return None
        _check(model.serving)
        return ServingGraph(graph, model.serving)


def export(serving: ServingGraph, checkpoint: str, model_dir: str, step: int) -> str:
    """Export `checkpoint` (at global step `step`) to `<model_dir>/export/<step>`; kept if already there."""
    base = os.path.join(model_dir, EXPORT_DIR)
    final = os.path.join(base, str(step))
    if os.path.exists(os.path.join(final, "saved_model.pb")):
        logging.info("SavedModel of step %d already in %s", step, final)
        return final
    temporary = os.path.join(base, f".tmp-{step}-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(base, exist_ok=True)
    serving.export(checkpoint, temporary)
    shutil.rmtree(final, ignore_errors=True)  # an incomplete one from an earlier attempt
    os.replace(temporary, final)
    logging.info("exported the SavedModel of step %d to %s", step, final)
    return final


def export_latest(serving: ServingGraph, model_dir: str) -> Optional[str]:
    """Export the newest checkpoint of `model_dir` (the chief's final one, when no evaluator exports)."""
    checkpoint = tf.train.latest_checkpoint(model_dir)
    if checkpoint is None:
        return None
    return export(serving, checkpoint, model_dir, step_of(checkpoint))
