"""The progress line: global step against the target, steps/sec, ETA, and each task's state."""

from __future__ import annotations

import collections
import time
from typing import Iterable, Optional


class Rate:
    """Global steps per second over the last `window_secs`."""

    def __init__(self, window_secs: float = 10.0):
        self._window = window_secs
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, step: int, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, step))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()

    def per_sec(self) -> Optional[float]:
        if len(self._samples) < 2:
            return None
        (t0, s0), (t1, s1) = self._samples[0], self._samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 >= s0 else None


def render(step: Optional[int], target: int, rate: Optional[float], states: Iterable[tuple[str, str]], *,
           workers: Optional[int] = None, rolled_back_from: Optional[int] = None) -> str:
    """One line: `step 340/1000 (34%) | 120.5 steps/s | ETA 5s | 1 worker | chief:0 training, ps:0 serving`;
    `rolled back from 4326` after the step while the global step went back and has not passed it again."""
    parts = ["step -/%d" % target if step is None else f"step {step}/{target} ({100 * step // target}%)"]
    if rolled_back_from is not None:
        parts.append(f"rolled back from {rolled_back_from}")
    if rate:
        parts.append(f"{rate:.1f} steps/s")
        if step is not None and step < target:
            parts.append(f"ETA {_duration((target - step) / rate)}")
    if workers is not None:
        parts.append(f"{workers} worker{'s' if workers != 1 else ''}")
    parts.append(", ".join(f"{name} {state}" for name, state in states))
    return " | ".join(parts)


def _duration(secs: float) -> str:
    secs = int(secs)
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else (
        f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s")
