"""When a run that trained to its end is over, and whom it stops waiting for.

- Once the chief has reached the target (it reported the end of its loop), it waits for each worker's
  last report before its final save. A worker that has sent no status for `worker_exit_secs` by then (a
  frozen process whose port still accepts connections included) is given up on at once: it is stopped,
  not restarted, and the chief saves without it. (Counting from its last status, not from the chief's
  end: a worker frozen early in the run must not hold up the end for another `hang_secs`.)
- A worker whose current process has no session when the chief exits 0 (it has not joined training, or
  it is re-creating a session it lost) has nothing left to do: the global step is at the target, and the
  ps it would wait for are released. It is dismissed at once (asked to stop, killed if it does not within
  DISMISS_GRACE_SECS), never waited for. Both seen: a worker restarted on another node as Ray declared its
  old one dead just when training ended; a worker whose sessions kept failing after a cut-off host's ps
  moved, until the chief's final save (the chief waits only for workers registered by a live session).
- The run is over once the chief has exited 0, the workers have ended (each gets `worker_exit_secs` after
  the chief's exit) and the evaluator has scored the final checkpoint (or `eval_wait_secs` passed).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

from launcher.cluster.spec import CHIEF, EVALUATOR, WORKER, TaskId
from launcher.launch.task_state import Phase, TaskState


@dataclasses.dataclass(frozen=True)
class EndDecision:
    give_up: tuple[TaskId, ...] = ()  # workers to stop now: silent too long after the chief reached the target
    over: bool = False
    dismiss: tuple[TaskId, ...] = ()  # workers to stop now: not needed, the chief exited while they had no session


DISMISS_GRACE_SECS = 5.0


def chief_reached_target(states: Iterable[TaskState]) -> bool:
    return any(s.task.job == CHIEF and (s.phase is Phase.DONE or (s.running and s.attempts[-1].loop_done))
               for s in states)


def decide(states: Iterable[TaskState], now: float, chief_done_at: Optional[float], *, worker_exit_secs: float,
           eval_wait_secs: float) -> EndDecision:
    """`chief_done_at`: when the chief exited 0 (monotonic), None while it has not."""
    states = list(states)
    give_up = given_up(states, now, worker_exit_secs)
    if chief_done_at is None:
        return EndDecision(give_up)
    since = now - chief_done_at
    dismiss = tuple(s.task for s in states if s.task.job == WORKER and s.running and not s.attempts[-1].in_session
                    and not s.attempts[-1].loop_done and s.attempts[-1].dismissed_at is None)
    workers_running = any(s.task.job == WORKER and s.running for s in states)
    if workers_running and since < worker_exit_secs:
        return EndDecision(give_up, dismiss=dismiss)
    # The evaluator exits by itself once it has scored the final checkpoint.
    evaluator_running = any(s.task.job == EVALUATOR and s.running for s in states)
    return EndDecision(give_up, over=not evaluator_running or since >= eval_wait_secs, dismiss=dismiss)


def unwilling(states: Iterable[TaskState], now: float) -> tuple[TaskId, ...]:
    """Dismissed workers still running DISMISS_GRACE_SECS after they were asked to stop (to be killed)."""
    return tuple(s.task for s in states if s.running and s.attempts[-1].dismissed_at is not None
                 and now - s.attempts[-1].dismissed_at >= DISMISS_GRACE_SECS and not s.attempts[-1].dismiss_killed)


def given_up(states: list[TaskState], now: float, worker_exit_secs: float) -> tuple[TaskId, ...]:
    """Once the chief has reached the target: the running workers silent for `worker_exit_secs` (not already
    being killed, not done with their loop)."""
    if not chief_reached_target(states):
        return ()
    return tuple(s.task for s in states if s.task.job == WORKER and s.running and not s.attempts[-1].loop_done
                 and s.attempts[-1].killed_for is None and silent_secs(s, now) >= worker_exit_secs)


def silent_secs(state: TaskState, now: float) -> float:
    attempt = state.attempts[-1]
    heard = attempt.heard_at if attempt.heard_at is not None else attempt.go_at
    return 0.0 if heard is None else now - heard
