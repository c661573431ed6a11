"""Stopping every task: SIGTERM in waves (chief, workers and evaluator first, which save or need the
variables, then the ps that hold them), SIGKILL whatever outlives the grace; a second stop signal to the
launcher cuts the grace short."""

from __future__ import annotations

import signal
from typing import Callable, Iterable

from launcher.cluster.spec import CHIEF, EVALUATOR, PS, WORKER
from launcher.launch.clock import Clock
from launcher.launch.task_state import Phase, TaskState

POLL_SECS = 0.1
KILL_WAIT_SECS = 60.0
WAVES = ((CHIEF, WORKER, EVALUATOR), (PS,))


def stop_all(states: Iterable[TaskState], clock: Clock, grace_secs: float, hurried: Callable[[], bool],
             say: Callable[[str], None]) -> None:
    states = list(states)
    for wave in WAVES:
        stopping = [s for s in states if s.task.job in wave and s.running]
        for state in stopping:
            state.handle.signal(signal.SIGTERM)
            state.handle.signal(signal.SIGCONT)  # a stopped task handles its SIGTERM only once resumed
        deadline = clock.monotonic() + grace_secs
        for state in stopping:
            while state.handle.poll() is None and clock.monotonic() < deadline and not hurried():
                clock.sleep(POLL_SECS)
            if state.handle.poll() is None:
                state.handle.signal(signal.SIGKILL)
                # Bounded too: a task on a silent node may not hear the signal; its backend says within
                # KILL_WAIT_SECS when the node is declared lost.
                killed = clock.monotonic()
                while state.handle.poll() is None and clock.monotonic() - killed < KILL_WAIT_SECS:
                    clock.sleep(POLL_SECS)
                if state.handle.poll() is None:
                    say(f"[launcher] {state.task} did not confirm its end within {KILL_WAIT_SECS:g}s "
                        "(its node does not answer); leaving it")
            code = state.handle.poll()
            state.ended(code if code is not None else -signal.SIGKILL, clock.time())
            state.phase = Phase.STOPPED
