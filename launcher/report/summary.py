"""The terminal summary of run.json: one block per run (outcome, steps, restarts, hangs, stragglers, eval)."""

from __future__ import annotations

import datetime
import math
from typing import Optional

from launcher.launch.run_record import Run, Task


def parse_time(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def first_line(text: Optional[str]) -> str:
    return (text or "").splitlines()[0] if text and text.strip() else ""


def restart_reasons(task: Task) -> list[str]:
    """Why each process of `task` but the last ended: the launcher's hang verdict, a root cause, or its code."""
    reasons = []
    for attempt in task.attempts[:-1]:
        if attempt.killed_for:
            reasons.append("hung")
        elif attempt.cause:
            reasons.append(first_line(attempt.cause))
        else:
            code = attempt.exit_code
            reasons.append(f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}")
    return reasons


def _duration(secs: Optional[float]) -> str:
    if secs is None or not math.isfinite(secs):
        return "?"
    secs = int(secs)
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def _number(value: float) -> str:
    return f"{value:.4g}"


def render(runs: list[Run]) -> str:
    blocks = []
    for number, run in enumerate(runs, 1):
        start, end = parse_time(run.started), parse_time(run.ended)
        lines = [f"run {number}: {run.outcome} (exit {run.exit_code}) at {run.started}, "
                 f"{_duration(end - start if start and end else None)}"]
        if first_line(run.summary):
            lines.append(f"  {first_line(run.summary)}")
        start_step = run.global_step_start
        lines.append(f"  steps: {'none' if start_step is None else start_step} -> {run.global_step_end} "
                     f"(target {run.train_steps}), model {run.model}")
        restarted = [f"{t.name} {t.restarts} ({', '.join(restart_reasons(t))})" for t in run.tasks if t.restarts]
        lines.append(f"  restarts: {'; '.join(restarted) if restarted else 'none'}")
        moves = [f"{t.name} {a.moved.from_host} -> {a.moved.to}" for t in run.tasks for a in t.attempts if a.moved]
        if moves:
            lines.append(f"  host moves: {'; '.join(moves)}")
        if run.membership:
            words = {"join": "joined", "leave": "asked to leave", "left": "left"}
            lines.append("  workers: " + "; ".join(
                f"+{_duration(c.time - start if start else None)} {c.task} {words.get(c.change, c.change)} "
                f"({c.workers})" for c in run.membership))
        lines.append(f"  hangs: {len(run.hangs) if run.hangs else 'none'}")
        for hang in run.hangs:
            offset = hang.detected - start if start else None
            lines.append(f"    at +{_duration(offset)}: {hang.verdict} -> {hang.action}")
        lines.append("  stragglers: " + (", ".join(f"{s.task} ({s.ratio}x slower)" for s in run.stragglers)
                                         if run.stragglers else "none"))
        if run.eval:
            metrics = ", ".join(f"{k} {_number(v)}" for k, v in run.eval.metrics.items())
            lines.append(f"  eval at step {run.eval.step}: {metrics}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no runs recorded"
