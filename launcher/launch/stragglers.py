"""Stragglers: a training task stepping much slower than its peers, named (not killed).

Each chief and worker reports its own step count about once a second; its rate is taken over a sliding
window. A task slower than 1/ratio of the median of its peers' rates, for `SUSTAIN_SECS` in a row, is a
straggler: named with how many times slower it is, until it catches up. Between-graph replication is
asynchronous, so a straggler slows nobody else; it only contributes fewer steps, which is worth knowing
(a throttled host, a noisy neighbour, a slow input shard).
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
from typing import Optional

from launcher.cluster.spec import TaskId

WINDOW_SECS = 20.0
SUSTAIN_SECS = 10.0
MIN_SPAN_SECS = 5.0  # a rate needs this much history


@dataclasses.dataclass
class Straggler:
    task: TaskId
    ratio: float          # peers' median rate / its rate, the latest
    since: float          # monotonic: slow since
    named: bool = False   # the sustain time has passed: it is reported
    first_named: Optional[float] = None  # epoch seconds, for run.json
    worst_ratio: float = 0.0

    def record(self) -> dict:
        return {"task": self.task.name, "ratio": round(self.ratio, 2), "worst_ratio": round(self.worst_ratio, 2),
                "named_at": self.first_named}


class Stragglers:
    def __init__(self, ratio: float):
        self.ratio = ratio
        self._samples: dict[TaskId, collections.deque[tuple[float, int]]] = {}
        self._slow: dict[TaskId, Straggler] = {}
        self.history: list[Straggler] = []  # every task ever named, for run.json

    def restart(self, task: TaskId) -> None:
        """A new process of `task`: its local step count starts again."""
        self._samples.pop(task, None)
        self._slow.pop(task, None)

    def add(self, task: TaskId, local_steps: int, now: float) -> None:
        samples = self._samples.setdefault(task, collections.deque())
        samples.append((now, local_steps))
        while len(samples) > 2 and now - samples[0][0] > WINDOW_SECS:
            samples.popleft()

    def forget(self, task: TaskId) -> None:
        """`task` no longer trains (ended): it has no rate to compare."""
        self._samples.pop(task, None)
        self._slow.pop(task, None)

    def rate(self, task: TaskId, now: float) -> Optional[float]:
        samples = self._samples.get(task)
        if not samples or now - samples[-1][0] > WINDOW_SECS / 2:
            return None  # silent: the watchdog's business, not a rate
        (t0, s0), (t1, s1) = samples[0], samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 - t0 >= MIN_SPAN_SECS else None

    def check(self, now: float, wall: float) -> list[Straggler]:
        """Update and return the named stragglers (`wall`: epoch seconds, for the record)."""
        rates = {t: r for t in list(self._samples) if (r := self.rate(t, now)) is not None}
        for task, rate in rates.items():
            peers = [r for t, r in rates.items() if t != task]
            median = statistics.median(peers) if peers else None
            if not median or median <= 0 or rate * self.ratio > median:
                self._slow.pop(task, None)
                continue
            ratio = median / rate if rate > 0 else float("inf")
            slow = self._slow.setdefault(task, Straggler(task, ratio, now))
            slow.ratio = ratio
            if not slow.named and now - slow.since >= SUSTAIN_SECS:
                slow.named, slow.first_named = True, wall
                self.history.append(slow)
            if slow.named:
                slow.worst_ratio = max(slow.worst_ratio, min(ratio, 1e6))
        return [s for s in self._slow.values() if s.named]
