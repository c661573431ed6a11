"""What to do about a hang, once `diagnosis` has explained it: --on_hang says, within these rules.

- After the chief's final save (the watchdog's end-of-run alarm) the culprits are stopped, not restarted,
  whatever --on_hang says: training is over, they only hold up the chief's last save.
- A verdict without evidence (no culprit is stopped or cut off: the culprits are only the silent tasks, or
  everyone) while the run is recovering (a restarted process is still starting, for at most
  2 x `hang_secs`, or came up less than `hang_secs` ago, and the others wait for it or re-create their
  sessions) waits one more `hang_secs` instead of acting: killing tasks that are about to find their
  restarted peer again only starts the recovery over. A run still stuck after that is acted on.
- Otherwise: "restart" kills the culprits (they are restarted like any kill; an evaluator is never killed
  for a hang), "abort" stops the run, "report" does nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

from launcher.cluster.spec import EVALUATOR, TaskId
from launcher.launch.diagnosis import Diagnosis
from launcher.launch.task_state import TaskState
from launcher.launch.watchdog import Alarm

RESTART, REPORT, ABORT, STOP, WAIT = "restart", "report", "abort", "stop", "wait"
ACTIONS = (RESTART, REPORT, ABORT)  # what --on_hang may say


@dataclasses.dataclass(frozen=True)
class HangDecision:
    action: str
    kill: tuple[TaskId, ...] = ()
    recovering: Optional[TaskId] = None  # WAIT: the restarted task that is starting or just came up


def recovering_from(states: Iterable[TaskState], now: float, hang_secs: float) -> Optional[TaskId]:
    """A task whose restarted process is still starting (not for long) or came up lately, if any."""
    for state in states:
        attempt = state.attempts[-1] if state.attempts else None
        if not state.running or not state.restarts or attempt is None:
            continue
        if attempt.go_at is None and attempt.began_at is not None and now - attempt.began_at < 2 * hang_secs:
            return state.task  # importing, checking flags: its peers wait for it, rightly
        if attempt.go_at is not None and now - attempt.go_at < hang_secs:
            return state.task
    return None


def decide(on_hang: str, alarm: Alarm, found: Diagnosis, states: Iterable[TaskState], now: float,
           hang_secs: float) -> HangDecision:
    states = list(states)
    running = {s.task for s in states if s.running}
    culprits = tuple(t for t in found.culprits if t in running and t.job != EVALUATOR)
    if alarm.end_of_run:
        return HangDecision(STOP, culprits)
    if on_hang == REPORT:
        return HangDecision(REPORT)
    evidence = any(p.stopped or p.cut_off for p in found.probes)
    fresh = None if evidence else recovering_from(states, now, hang_secs)
    if fresh is not None:
        return HangDecision(WAIT, recovering=fresh)
    if on_hang == ABORT:
        return HangDecision(ABORT)
    return HangDecision(RESTART, culprits)
