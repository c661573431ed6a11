"""How long a training step may take before it counts as stalled (see `recovery` for why steps stall).

Free of TensorFlow: the task's training loop turns the deadline into RunOptions.timeout_in_ms.
"""

from __future__ import annotations

import collections


class StepDeadline:
    """How long a step may take: `floor_secs`, or `factor` times the slowest of the last `window` steps when
    that is longer, so that a model whose steps are slow, or become slower, is never cut short.

    The task's first step has no deadline: nothing is known yet about how long a step takes. 0 turns the
    deadline off.
    """

    def __init__(self, floor_secs: float, factor: float = 10.0, window: int = 100):
        self.floor_secs = floor_secs
        self._factor = factor
        self._recent: collections.deque[float] = collections.deque(maxlen=window)

    def secs(self) -> float:
        """The deadline for the next step; 0 for none."""
        if self.floor_secs <= 0 or not self._recent:
            return 0.0
        return max(self.floor_secs, self._factor * max(self._recent))

    def took(self, secs: float) -> None:
        self._recent.append(secs)
