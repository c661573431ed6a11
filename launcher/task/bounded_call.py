"""A call waited for at most a given time, and left behind after it.

TensorFlow gives some of its calls no deadline at all: a session's creation asks every task it needs and
waits for each answer, and a session's close, after a peer died, has been seen to block for good (see
`session_creators`). Such a call runs in a daemon thread of its own; the caller waits a fixed time, and
then goes on without it. The thread cannot be stopped, so the caller must know that whatever the call may
still do is harmless (a read, or the close of a session nobody uses).
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

# Set once a call was left running: such a process ends with os._exit (see `program`), since Python's own
# exit would wait for it (a session's deletion waits for its close) for ever.
abandoned = threading.Event()


class Abandoned(Exception):
    """The call had not finished in time; its thread goes on, and nobody waits for it."""


def within(secs: float, call: Callable[[], T], name: str) -> T:
    """`call()`'s result, or what it raised, when it ends within `secs`; `Abandoned` when it does not."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as e:  # handed to the caller's thread
            outcome.append((False, e))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(secs)
    if thread.is_alive():
        abandoned.set()
        raise Abandoned(f"{name} had not finished after {secs:g}s")
    finished, value = outcome[0]
    if not finished:
        raise value
    return value
