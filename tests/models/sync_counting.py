"""Test model: synchronous training brought by the model itself, and hooks of its own.

Its optimizer is `SyncReplicasOptimizer(GradientDescentOptimizer(0.05), replicas_to_aggregate=3,
total_num_replicas=3)` around the counting optimizer of `models.counting`: after a run, the checkpoint's
`applied_updates` says how many aggregated updates really reached the variables. Its hooks print a line
that the tests look for in each task's log: every training task's hook, the chief's own hook, and the
evaluator's hook (with the batches it saw). It is served: `x` in, `y` out. --step_sleep_secs slows every step, so that a test has time to act
mid-training.
"""

import json
import os

import time

import numpy as np
import tensorflow as tf
from absl import flags

import launcher
from models.counting import CountingOptimizer, regression


STEP_SLEEP_SECS = flags.DEFINE_float("step_sleep_secs", 0.0, "Sleep in every step.")


class _SayHook(tf.compat.v1.train.SessionRunHook):
    """Prints `<what>: <n> runs` at the end of each session."""

    def __init__(self, what: str):
        self._what = what
        self._runs = 0

    def after_run(self, run_context, run_values):
        self._runs += 1

    def end(self, session):
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        print(f"model hook {self._what} on {task['type']}:{task['index']}: {self._runs} runs", flush=True)


def build(mode):
    w, b, loss = regression()
    if mode == launcher.PREDICT:
        features = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        return launcher.Model(serving=launcher.Serving(inputs={"x": features},
                                                       outputs={"y": tf.matmul(features, w) + b}))
    if mode == launcher.EVAL:
        return launcher.Model(loss=loss, evaluation_hooks=[_SayHook("evaluation_hooks")])
    if STEP_SLEEP_SECS.value:
        def sleep():
            time.sleep(STEP_SLEEP_SECS.value)
            return np.float32(0)
        loss += tf.compat.v1.py_func(sleep, [], tf.float32, stateful=True)
    counter = tf.compat.v1.get_variable("applied_updates", [], tf.int64, trainable=False,
                                        initializer=tf.compat.v1.zeros_initializer())
    optimizer = tf.compat.v1.train.SyncReplicasOptimizer(
        CountingOptimizer(tf.compat.v1.train.GradientDescentOptimizer(0.05), counter),
        replicas_to_aggregate=3, total_num_replicas=3)
    return launcher.Model(loss=loss, optimizer=optimizer, training_hooks=[_SayHook("training_hooks")],
                          training_chief_hooks=[_SayHook("training_chief_hooks")])
