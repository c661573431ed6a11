"""The supervisor's clock, passed in so that its loop can be driven by a fake one in tests.

`monotonic` measures waits (hang limits, grace); `time` stamps the run record (Unix seconds, comparable
across machines); `wait` is the loop's idle: the next event from the queue, or None after `secs`.
"""

from __future__ import annotations

import queue
import time
from typing import Optional, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, secs: float) -> None: ...

    def wait(self, events: "queue.Queue[T]", secs: float) -> Optional[T]:
        """The next item of `events`, waiting up to `secs` for one; None if none came."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, secs: float) -> None:
        time.sleep(secs)

    def wait(self, events: "queue.Queue[T]", secs: float) -> Optional[T]:
        try:
            return events.get(timeout=secs)
        except queue.Empty:
            return None
