"""The contract between the launcher and a user's model module.

A model module is any importable Python module that defines

    def build(mode: str) -> launcher.Model

`build` is called inside the task's graph and device scope, with `mode` TRAIN on the chief and workers and
EVAL on the evaluator; it creates its own input pipeline and variables and returns what training needs.
The module may define absl flags of its own at import time; they are settable per role like the
launcher's. Nothing in the launcher has to change for a new model.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, Optional

from launcher.cluster.errors import UserError

TRAIN, EVAL = "train", "eval"
BUILD_FUNCTION = "build"


@dataclasses.dataclass(frozen=True)
class Model:
    """What `build(mode)` returns.

    loss: the scalar to minimise (in EVAL mode, the loss on eval data, reported as a metric).
    optimizer: a `tf.compat.v1.train.Optimizer`; the launcher builds the train op from it, so that the
      global step is advanced the same way for every model. Not needed in EVAL mode.
    eval_metrics: name -> (value, update_op), as `tf.compat.v1.metrics.*` return them; EVAL mode.
    """

    loss: Any
    optimizer: Optional[Any] = None
    eval_metrics: Mapping[str, tuple[Any, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss is None:
            raise UserError("launcher.Model: loss is required")
        for name, metric in self.eval_metrics.items():
            if not (isinstance(metric, tuple) and len(metric) == 2):
                raise UserError(f"launcher.Model: eval_metrics[{name!r}] must be a (value, update_op) pair, "
                                f"as tf.compat.v1.metrics return them")


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
        if mode == TRAIN and model.optimizer is None:
            raise UserError(f"--model {module_name!r}: build({mode!r}) returned no optimizer; training needs one")
        return model

    return checked_build
