"""Test model: the linear model, printing forged status lines as it builds and during its first steps.

HTML where a step belongs, a string where a count belongs, markup in a metric's name, and one line hidden
after a newline inside a logged message: the launcher must keep none of it as markup or as a number, and
the run must still train to its target.
"""

import json
import sys

import tensorflow as tf
from absl import logging

import launcher
from launcher.models import linear

PREFIX = "@launcher-status "
IMG = "<img src=x onerror=alert(2)>"
SCRIPT = "<script>alert(1)</script>"
FORGED = [
    {"event": "session", "step": IMG},
    {"event": "progress", "local_steps": "lots", "step": "<b>9</b>"},
    {"event": "done", "step": [IMG], "local_steps": {"x": 1}},
    {"event": "eval", "step": 1, "metrics": {SCRIPT: 1.0, "x\" onmouseover=\"alert(3)": 2.0}},
    {"event": "<svg onload=alert(4)>", "step": 5},
]


def shout() -> None:
    for status in FORGED:
        print(PREFIX + json.dumps(status), flush=True)
        sys.stderr.write(PREFIX + json.dumps(status) + "\n")
    logging.info("an innocent message\n%s%s", PREFIX, json.dumps({"event": "session", "step": IMG}))


_calls = [0]


def _in_step(step):
    _calls[0] += 1
    if _calls[0] <= 3:
        shout()
    return step


def build(mode: str) -> launcher.Model:
    shout()
    model = linear.build(mode)
    if mode != launcher.TRAIN:
        return model
    step = tf.compat.v1.train.get_or_create_global_step()
    said = tf.compat.v1.py_func(_in_step, [step], tf.int64, stateful=True)
    with tf.control_dependencies([said]):
        loss = tf.identity(model.loss)
    return launcher.Model(loss=loss, optimizer=model.optimizer)
