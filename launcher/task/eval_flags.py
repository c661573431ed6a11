"""The evaluator's own task flags (absl only, no TensorFlow: the launcher checks them before starting).

Set them with `--evaluator_flags`, e.g. `--evaluator_flags="--eval_steps=50 --keep_best=accuracy:max"`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from absl import flags

MAX, MIN = "max", "min"

EVAL_STEPS = flags.DEFINE_integer(
    "eval_steps", None, "Eval batches per checkpoint; by default, until the eval input ends "
    "(OutOfRangeError), so that metrics cover the whole eval set.", lower_bound=1)
KEEP_BEST = flags.DEFINE_string(
    "keep_best", None, "METRIC or METRIC:max: keep the checkpoint with the best METRIC (lower is better, "
    "unless :max) in <model_dir>/best/, out of max_to_keep's reach, and export that one for serving.")


@dataclasses.dataclass(frozen=True)
class KeepBest:
    metric: str
    higher_is_better: bool

    def better(self, value: float, than: Optional[float]) -> bool:
        if than is None:
            return True
        return value > than if self.higher_is_better else value < than

    def __str__(self) -> str:
        return f"{self.metric}:{MAX if self.higher_is_better else MIN}"


def parse_keep_best(value: Optional[str]) -> Optional[KeepBest]:
    """`accuracy:max` -> KeepBest("accuracy", True); `loss` or `loss:min` -> lower is better."""
    if not value:
        return None
    metric, _, direction = value.rpartition(":") if ":" in value else (value, "", MIN)
    if not metric or direction not in (MAX, MIN):
        raise ValueError(f"--keep_best={value!r}: expected METRIC, METRIC:min or METRIC:max")
    return KeepBest(metric, direction == MAX)


def _valid(value: Optional[str]) -> bool:
    try:
        parse_keep_best(value)
    except ValueError:
        return False
    return True


flags.register_validator(KEEP_BEST, _valid, "expected METRIC, METRIC:min or METRIC:max")
