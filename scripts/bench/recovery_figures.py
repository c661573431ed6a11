"""A recovery trial's figures, from the launcher's run.json and what the logs showed around the kill.

run.json holds each task's attempts (start, first step) and the chief's sessions (time, global step),
which give the recovery and respawn times and the step the training resumed at.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from launcher.cluster.spec import CHIEF, PS, WORKER


@dataclasses.dataclass
class RecoveryResult:
    victim: str
    exit_code: Optional[int]
    kill_time: float  # Unix epoch, as run.json's attempt times
    step_at_kill: Optional[int]
    last_saved: Optional[int]
    recovered: bool  # seen in the logs within RECOVERY_WAIT_SECS
    recovery_secs: Optional[float]  # kill -> next global step, from run.json
    log_step_secs: Optional[float]  # kill -> first "step =" log line of the recovered session
    respawn_secs: Optional[float]  # kill -> the victim's next process started (run.json)
    restored_from: Optional[int]  # the step the chief's first session after the kill started from
    steps_lost: Optional[int]
    restored_checkpoint: Optional[int]  # the step of the checkpoint that the chief restored after the kill (log)
    rolled_back: Optional[int]  # highest step logged before that session - restored_checkpoint
    restarts: dict[str, int]
    floor_secs: Optional[float] = None
    notes: list[str] = dataclasses.field(default_factory=list)


def recovery_result(victim: str, run: dict, exit_code: Optional[int], kill_time: float,
                    step_at_kill: Optional[int], last_saved: Optional[int], recovered: bool,
                    log_step_secs: Optional[float], restored_checkpoint: Optional[int],
                    timed_steps: list[tuple[float, int]], notes: list[str]) -> RecoveryResult:
    """The figures of a trial whose last run record is `run`; `timed_steps`: (time, step) of the trainers'
    "step = N" log lines."""
    tasks = {f"{t['job']}:{t['index']}": t for t in run["tasks"]}
    attempts = tasks[victim]["attempts"]
    later = attempts[1] if len(attempts) > 1 else None
    # The chief's first session created after the kill (a restarted chief's, or a ps kill's re-created one).
    chief_session = next((s for a in tasks[CHIEF + ":0"]["attempts"] for s in a["sessions"]
                          if s["time"] > kill_time), None)
    if victim.split(":")[0] == PS:
        next_step = chief_session["time"] if chief_session else None
    else:
        next_step = later["first_step"] if later else None
    restored_from = chief_session["step"] if chief_session else None
    if restored_from is not None:
        steps_lost = None if step_at_kill is None else step_at_kill - restored_from
    else:
        steps_lost = 0 if victim.split(":")[0] == WORKER else None  # the chief kept its session
    # What the restore undid: the highest step reached (as logged) before the new session, which may be
    # past the step at the kill when the other trainer kept training meanwhile.
    rolled_back = 0 if chief_session is None and victim.split(":")[0] == WORKER else None
    if chief_session is not None and restored_checkpoint is not None:
        reached = max((step for at, step in timed_steps if at < chief_session["time"]), default=None)
        rolled_back = None if reached is None else reached - restored_checkpoint
    if later is None:
        notes.append(f"run.json shows no restart of {victim}")

    def since_kill(t: Optional[float]) -> Optional[float]:
        return None if t is None else round(t - kill_time, 3)

    return RecoveryResult(
        victim=victim, exit_code=exit_code, kill_time=kill_time, step_at_kill=step_at_kill,
        last_saved=last_saved, recovered=recovered, recovery_secs=since_kill(next_step),
        log_step_secs=None if log_step_secs is None else round(log_step_secs, 3),
        respawn_secs=since_kill(later["started"] if later else None), restored_from=restored_from,
        steps_lost=steps_lost, restored_checkpoint=restored_checkpoint, rolled_back=rolled_back,
        restarts={name: t["restarts"] for name, t in tasks.items()}, notes=notes)
