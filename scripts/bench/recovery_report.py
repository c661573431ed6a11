"""The recovery benchmark's table: one row per trial, with its legend."""

from __future__ import annotations

from bench.recovery import (RECOVERY_KILL_AFTER_SAVED, RECOVERY_LOG_STEPS, RECOVERY_MODEL, RECOVERY_SAVE_STEPS,
                            RECOVERY_SPEC, RECOVERY_WAIT_SECS)
from bench.recovery_figures import RecoveryResult
from bench.table import fmt, fmt_int, format_table, with_notes

RECOVERY_COLUMNS = ("victim", "recovery s", "log step s", "respawn s", "floor s", "step at kill", "last saved",
                    "ckpt restored", "restored from", "steps lost", "rolled back", "restarts c/w/p", "exit")

RECOVERY_LEGEND = f"""\
{RECOVERY_SPEC}, {{model}}; victim SIGKILLed once a checkpoint at step >= \
{RECOVERY_KILL_AFTER_SAVED} exists (checkpoints every {RECOVERY_SAVE_STEPS} steps)
recovery s: kill to the next global step: the restarted victim's first step (run.json); ps: the chief's
  first session created after the kill (* = not recovered within {RECOVERY_WAIT_SECS:.0f} s)
log step s: kill to the first "step =" log line of the recovered process (ps: of the chief's new session);
  that hook logs every {RECOVERY_LOG_STEPS} steps of its process, so it may come a few steps late
respawn s: kill to the start of the victim's next process; floor s: one bare process importing TensorFlow
  and starting a server, launch to ready (measured after each trial)
step at kill: highest "step = N" in the chief's and worker's logs (they lag by up to {RECOVERY_LOG_STEPS} steps)
last saved: the newest checkpoint then; ckpt restored: the checkpoint the chief restored after the kill
  (its log); restored from: the global step its first session after the kill started at, which is past
  that checkpoint when the worker kept training meanwhile (- = none: the chief kept its session)
steps lost: step at kill - restored from; rolled back: the highest step logged before that session -
  ckpt restored, i.e. the steps the restore undid, the worker's steps while the chief was down included
restarts c/w/p: restarts of chief, worker, ps in run.json; exit: the launcher's (143 = preempted by SIGTERM)"""


def recovery_row(r: RecoveryResult) -> list[str]:
    """The cells of one trial's row."""
    restarts = "/".join(fmt_int(r.restarts.get(key)) for key in ("chief:0", "worker:0", "ps:0"))
    return [r.victim, fmt(r.recovery_secs) + ("" if r.recovered else "*"), fmt(r.log_step_secs),
            fmt(r.respawn_secs), fmt(r.floor_secs), fmt_int(r.step_at_kill), fmt_int(r.last_saved),
            fmt_int(r.restored_checkpoint), fmt_int(r.restored_from), fmt_int(r.steps_lost), fmt_int(r.rolled_back),
            restarts, fmt_int(r.exit_code)]


def recovery_report(results: list[RecoveryResult], model: str = RECOVERY_MODEL) -> str:
    """The table, the legend and the trials' notes."""
    if not results:
        return "recovery: no trial produced figures"
    notes = [f"{r.victim}: {note}" for r in results for note in r.notes]
    return with_notes([format_table([recovery_row(r) for r in results], RECOVERY_COLUMNS, left=1), "",
                       RECOVERY_LEGEND.format(model=model.rsplit('.', 1)[-1])], notes)
