"""Test model: the linear model with a chief hook of its own whose end() fails once as a lost peer makes
the end of a session fail (TensorFlow's UnavailableError, raised by the hook here).

MonitoredSession recovers from a peer's loss in a step or a session's creation, never in the hooks' end(),
where the chief waits for its workers and saves the final checkpoint: the launcher must finish the run in
a new session, not end the chief with exit 1 and no final checkpoint.
"""

import dataclasses

import tensorflow as tf

from launcher.models import linear


class _EndCutShortOnce(tf.compat.v1.train.SessionRunHook):
    ends = 0

    def end(self, session):
        _EndCutShortOnce.ends += 1
        if _EndCutShortOnce.ends == 1:
            raise tf.errors.UnavailableError(None, None, "Socket closed (a test's stand-in for a lost ps)")


def build(mode):
    model = linear.build(mode)
    if mode != "train":
        return model
    return dataclasses.replace(model, training_chief_hooks=[_EndCutShortOnce()])
