"""The contract between the launcher and a user's model module.

A model module is any importable Python module that defines

    def build(mode: str) -> launcher.Model

`build` is called inside the task's graph and device scope, with `mode` TRAIN on the chief and workers and
EVAL on the evaluator; it creates its own input pipeline and variables and returns what training needs.
A model that is to be served also answers PREDICT (called once, for the SavedModel export) with its
`Serving` signature: placeholders in, predictions out, the same variables as TRAIN and EVAL. A model that
returns no `serving` there (or knows no PREDICT mode) is simply not exported.
The module may define absl flags of its own at import time; they are settable per role like the
launcher's. Nothing in the launcher has to change for a new model.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, Optional, Sequence

from launcher.cluster.errors import UserError

TRAIN, EVAL, PREDICT = "train", "eval", "predict"
BUILD_FUNCTION = "build"
_HOOK_METHODS = ("begin", "after_create_session", "before_run", "after_run", "end")


@dataclasses.dataclass(frozen=True)
class Serving:
    """How a model is served: its `serving_default` signature, as TensorFlow Serving calls it.

    inputs: name -> placeholder (`tf.compat.v1.placeholder`, batch dimension None) that a request feeds.
    outputs: name -> tensor computed from those inputs, e.g. {"class": ..., "probabilities": ...}.
    """

    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Model:
    """What `build(mode)` returns.

    loss: the scalar to minimise (in EVAL mode, the loss on eval data, reported as a metric). TRAIN and EVAL.
    optimizer: a `tf.compat.v1.train.Optimizer`; the launcher builds the train op from it, so that the
      global step is advanced the same way for every model. Not needed in EVAL mode.
    eval_metrics: name -> (value, update_op), as `tf.compat.v1.metrics.*` return them; EVAL mode. The
      evaluator runs the update ops until the eval input ends (`tf.errors.OutOfRangeError`), so a metric
      covers the whole eval set.
    serving: PREDICT mode only (nothing else is needed there): the signature to export.
    training_hooks: `tf.compat.v1.train.SessionRunHook`s that every training task (chief and workers) runs
      besides the launcher's own, as Estimator's `training_hooks`; TRAIN mode.
    training_chief_hooks: hooks that only the chief runs (Estimator's `training_chief_hooks`); TRAIN mode.
    evaluation_hooks: hooks that the evaluator runs with each checkpoint's eval session; EVAL mode.
    The launcher runs a `SyncReplicasOptimizer`'s own hook itself: a model does not add it.
    """

    loss: Any = None
    optimizer: Optional[Any] = None
    eval_metrics: Mapping[str, tuple[Any, Any]] = dataclasses.field(default_factory=dict)
    serving: Optional[Serving] = None
    training_hooks: Sequence[Any] = ()
    training_chief_hooks: Sequence[Any] = ()
    evaluation_hooks: Sequence[Any] = ()

    def __post_init__(self) -> None:
        for name, metric in self.eval_metrics.items():
            if not (isinstance(metric, tuple) and len(metric) == 2):
                raise UserError(f"launcher.Model: eval_metrics[{name!r}] must be a (value, update_op) pair, "
                                f"as tf.compat.v1.metrics return them")
        for field in ("training_hooks", "training_chief_hooks", "evaluation_hooks"):
            hooks = getattr(self, field)
            if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Sequence):
                raise UserError(f"launcher.Model: {field} must be a list of tf.compat.v1.train.SessionRunHook, "
                                f"not {type(hooks).__name__}")
            for i, hook in enumerate(hooks):
                # Duck-typed here (this module is imported where TensorFlow is not): the protocol's methods.
                if not all(callable(getattr(hook, m, None)) for m in _HOOK_METHODS):
                    raise UserError(f"launcher.Model: {field}[{i}] ({type(hook).__name__}) is not a "
                                    f"tf.compat.v1.train.SessionRunHook")
            object.__setattr__(self, field, tuple(hooks))


def load(module_name: str) -> Callable[[str], Model]:
    """The build function of `module_name`; importing it also defines the module's flags."""
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # any import-time failure in user code is the user's to fix
        raise UserError(f"--model {module_name!r} cannot be imported: {type(e).__name__}: {e}") from None
    build = getattr(module, BUILD_FUNCTION, None)
    if not callable(build):
        raise UserError(f"--model {module_name!r} ({module.__file__}) has no function "
                        f"{BUILD_FUNCTION}(mode) -> launcher.Model")

    def checked_build(mode: str) -> Model:
        model = build(mode)
        if not isinstance(model, Model):
            raise UserError(f"--model {module_name!r}: build({mode!r}) returned {type(model).__name__}, "
                            f"not a launcher.Model")
        if mode in (TRAIN, EVAL) and model.loss is None:
            raise UserError(f"--model {module_name!r}: build({mode!r}) returned no loss")
        if mode == TRAIN and model.optimizer is None:
            raise UserError(f"--model {module_name!r}: build({mode!r}) returned no optimizer; training needs one")
        return model

    return checked_build
