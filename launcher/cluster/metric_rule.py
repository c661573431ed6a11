"""A rule for judging an eval metric, as `--keep_best` and `--early_stop` take it: `METRIC` (lower is
better), `METRIC:min` or `METRIC:max` (accuracy-like). No TensorFlow: the launcher checks it too."""

from __future__ import annotations

import dataclasses
from typing import Optional

MAX, MIN = "max", "min"


@dataclasses.dataclass(frozen=True)
class MetricRule:
    metric: str
    higher_is_better: bool

    def better(self, value: float, than: Optional[float]) -> bool:
        if than is None:
            return True
        return value > than if self.higher_is_better else value < than

    def __str__(self) -> str:
        return f"{self.metric}:{MAX if self.higher_is_better else MIN}"


def parse(value: Optional[str], option: str = "keep_best") -> Optional[MetricRule]:
    """`accuracy:max` -> MetricRule("accuracy", True); `loss` or `loss:min` -> lower is better."""
    if not value:
        return None
    metric, _, direction = value.rpartition(":") if ":" in value else (value, "", MIN)
    if not metric or direction not in (MAX, MIN):
        raise ValueError(f"--{option}={value!r}: expected METRIC, METRIC:min or METRIC:max")
    return MetricRule(metric, direction == MAX)
