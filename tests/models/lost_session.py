"""Test model: the linear model whose worker loses its session after 20 steps and never gets one again
(its hook fails the 20th step as a lost peer does, then cuts short every later session's creation, as a
ps that moved and keeps restarting would). The chief trains on alone to the target.

When the chief ends the run, such a worker has nothing left to do: the launcher must dismiss it then,
not wait for it until `--worker_exit_secs`.
"""

import dataclasses
import json
import os

import tensorflow as tf

from launcher.models import linear

LOST_AFTER_STEPS = 20


class _LoseTheSessionForGood(tf.compat.v1.train.SessionRunHook):
    def __init__(self):
        self._steps = 0
        self._lost = False

    def begin(self):
        self._worker = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("type") == "worker"

    def after_create_session(self, session, coord):
        if self._lost:
            raise tf.errors.CancelledError(None, None, "RecvFromRemoteAsync is cancelled (a test's stand-in)")

    def after_run(self, run_context, run_values):
        self._steps += 1
        if self._worker and self._steps == LOST_AFTER_STEPS:
            self._lost = True
            raise tf.errors.AbortedError(None, None, "Session handle is not found (a test's stand-in)")


def build(mode):
    model = linear.build(mode)
    if mode != "train":
        return model
    return dataclasses.replace(model, training_hooks=[_LoseTheSessionForGood()])
