"""launcher.Model's hooks are checked where the model is built: a list of hooks, each one with the protocol's
methods (the task checks that each is a tf.compat.v1.train.SessionRunHook; see test_sync_training for them
running on a real cluster)."""

import pytest

import launcher
from launcher.cluster.errors import UserError


class _Hook:
    def begin(self): pass
    def after_create_session(self, session, coord): pass
    def before_run(self, run_context): pass
    def after_run(self, run_context, run_values): pass
    def end(self, session): pass


@pytest.mark.parametrize("field", ["training_hooks", "training_chief_hooks", "evaluation_hooks"])
def test_hooks_are_kept_as_a_tuple(field):
    hooks = [_Hook(), _Hook()]
    assert getattr(launcher.Model(**{field: hooks}), field) == tuple(hooks)
    assert getattr(launcher.Model(), field) == ()


@pytest.mark.parametrize("value, message", [
    (_Hook(), r"training_hooks must be a list of tf.compat.v1.train.SessionRunHook, not _Hook"),
    ("hook", r"training_hooks must be a list of .* not str"),
    ([_Hook(), object()], r"training_hooks\[1\] \(object\) is not a tf.compat.v1.train.SessionRunHook"),
])
def test_anything_else_is_refused_in_one_line(value, message):
    with pytest.raises(UserError, match=message):
        launcher.Model(training_hooks=value)
