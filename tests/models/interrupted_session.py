"""Test model: the linear model with a hook of its own whose work at its task's first session is cut short,
as a peer's restart cuts short a `run` then (TensorFlow's CancelledError, raised by the hook here).

MonitoredSession retries a session's creation only for Aborted and Unavailable errors: the launcher's hooks
must turn this one into a retry, not let it end the task.
"""

import dataclasses

import tensorflow as tf

from launcher.models import linear


class _CutShortOnce(tf.compat.v1.train.SessionRunHook):
    def __init__(self):
        self._sessions = 0

    def after_create_session(self, session, coord):
        self._sessions += 1
        if self._sessions == 1:
            raise tf.errors.CancelledError(None, None, "RecvFromRemoteAsync is cancelled (a test's stand-in)")


def build(mode):
    model = linear.build(mode)
    if mode != "train":
        return model
    return dataclasses.replace(model, training_hooks=[_CutShortOnce()])
