"""`--keep_best`: the best-scoring checkpoint so far, kept in `<model_dir>/best/` with its score.

The evaluator saves the variables it has just scored (its own Saver, max_to_keep=1) rather than copying the
chief's files: the chief's max_to_keep may delete those at any moment, and what the evaluator restored is
exactly what it scored. `best/` is an ordinary checkpoint directory (`tf.train.latest_checkpoint` reads it)
of the model's variables without optimizer slots; `best/score.json` says which step and what score.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf
from absl import logging

from launcher.cluster import safe_files
from launcher.cluster.errors import UserError
from launcher.cluster.metric_rule import MetricRule

BEST_DIR = "best"
SCORE_FILE = "score.json"


class BestCheckpoint:
    def __init__(self, model_dir: str, rule: MetricRule):
        self.rule = rule
        self.directory = os.path.join(model_dir, BEST_DIR)
        # Built now, before the evaluator finalizes its graph; keeps one checkpoint, deleting the previous.
        self._saver = tf.compat.v1.train.Saver(max_to_keep=1, save_relative_paths=True)
        self.score: Optional[dict] = self._previous()

    def _previous(self) -> Optional[dict]:
        """A kept checkpoint from an earlier evaluator (restarted, or a resumed run) by the same rule."""
        try:
            with safe_files.open_read(os.path.join(self.directory, SCORE_FILE)) as f:
                score = json.load(f)
        except (OSError, ValueError, UserError):  # missing, damaged, or a planted symlink (not ours)
            return None
        if not isinstance(score, dict):
            return None
        path = tf.train.latest_checkpoint(self.directory)
        if score.get("rule") != str(self.rule) or path is None:
            return None  # another metric: start over (the new best replaces it)
        self._saver.recover_last_checkpoints([path])  # so that a better one replaces it on disk
        return score

    @property
    def path(self) -> Optional[str]:
        """The kept checkpoint's prefix, if any."""
        return tf.train.latest_checkpoint(self.directory) if self.score else None

    def offer(self, session: tf.compat.v1.Session, step: int, metrics: dict) -> bool:
        """Keep the variables in `session` (checkpoint `step`, scored `metrics`) if they beat the best."""
        value = metrics[self.rule.metric]
        if not self.rule.better(value, self.score["value"] if self.score else None):
            return False
        safe_files.make_dir(self.directory)
        self._saver.save(session, os.path.join(self.directory, "model.ckpt"), global_step=step,
                         write_meta_graph=False)
        self.score = {"rule": str(self.rule), "metric": self.rule.metric, "value": value, "step": step,
                      "metrics": metrics}
        safe_files.write_replacing(os.path.join(self.directory, SCORE_FILE), json.dumps(self.score, indent=1))
        logging.info("best %s so far: %.6g at step %d, kept in %s", self.rule.metric, value, step,
                     self.directory)
        return True
