"""Free ports for the tasks' servers, picked below the kernel's ephemeral port range.

A task's port is picked before its server binds it. A port from the ephemeral range (where portpicker's
first choice, the kernel's own `bind(0)`, comes from) can meanwhile be handed by the kernel to any process
that connects out or listens on port 0: on a Slurm node the launcher's own `srun`s open such ports for
every step, and one took a task's picked port before the task bound it (seen: the run failed at start).
The kernel never hands out a port below the range that way; each one picked there is checked free with
portpicker. Where the range leaves no room below it, portpicker picks as it does by itself.

    python -m launcher.cluster.free_ports COUNT   # COUNT distinct free ports of this machine, one line
"""

from __future__ import annotations

import random
import sys
from typing import AbstractSet

import portpicker

LOW = 15000  # where portpicker's own fallback range starts: clear of the common services below it
_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_DEFAULT_EPHEMERAL_START = 32768  # Linux's default range is 32768-60999
_MIN_ROOM = 1000
_TRIES = 100


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range."""
    try:
        with open(_RANGE_FILE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_START


def pick(taken: AbstractSet[int] = frozenset()) -> int:
    """A port free now, not in `taken`, below the ephemeral range where there is room."""
    high = ephemeral_start()
    if high - LOW >= _MIN_ROOM:
        for _ in range(_TRIES):
            port = random.randrange(LOW, high)
            if port not in taken and portpicker.is_port_free(port):
                return port
    port = portpicker.pick_unused_port()
    while port in taken:
        port = portpicker.pick_unused_port()
    return port


def pick_many(count: int, taken: AbstractSet[int] = frozenset()) -> list[int]:
    """`count` distinct free ports, none in `taken`."""
    picked: list[int] = []
    for _ in range(count):
        picked.append(pick(set(taken) | set(picked)))
    return picked


if __name__ == "__main__":
    print(*sorted(pick_many(int(sys.argv[1]))))
