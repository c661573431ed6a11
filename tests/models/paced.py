"""Test model: `counting`'s model (its `applied_updates` counts the updates that reached the variables), with
each step slowed by the number of seconds written in --pace_file (none, or no file: full speed).

A test that changes a running cluster (workers joining, leaving, tasks moving) keeps the run short of its
target while it acts, then lets it finish, without guessing how fast this machine trains.
"""

import time

import tensorflow as tf
from absl import flags

import launcher
from models import counting

PACE_FILE = flags.DEFINE_string("pace_file", None, "A file holding the seconds each step sleeps.")


def _pause() -> float:
    try:
        with open(PACE_FILE.value) as f:
            secs = float(f.read().strip() or 0)
    except (TypeError, OSError, ValueError):
        secs = 0.0
    if secs > 0:
        time.sleep(secs)
    return 0.0


def build(mode):
    model = counting.build(mode)
    if mode == launcher.EVAL:
        return model
    pause = tf.compat.v1.py_func(_pause, [], tf.double, stateful=True)
    return launcher.Model(loss=model.loss + tf.cast(pause, tf.float32), optimizer=model.optimizer)
