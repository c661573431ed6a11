"""What a checkpoint's file name says (its global step), read without importing TensorFlow."""

from __future__ import annotations

import os
import re
from typing import Optional

_STEP = re.compile(r"-(\d+)$")


def step_of(prefix: str) -> int:
    """The global step in a checkpoint prefix such as `model.ckpt-1200`; -1 when it has none."""
    match = _STEP.search(prefix)
    return int(match.group(1)) if match else -1


def newest_step(model_dir: str) -> Optional[int]:
    """The highest global step among the checkpoints in `model_dir` (by name), or None."""
    if not os.path.isdir(model_dir):
        return None
    steps = [step_of(name[: -len(".index")]) for name in os.listdir(model_dir) if name.endswith(".index")]
    steps = [step for step in steps if step >= 0]
    return max(steps) if steps else None
