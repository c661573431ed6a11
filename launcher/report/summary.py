"""The terminal summary of run.json: one block per run (outcome, steps, restarts, hangs, stragglers, eval)."""

from __future__ import annotations

import datetime
from typing import Optional


def parse_time(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def task_name(task: dict) -> str:
    return f"{task['job']}:{task['index']}"


def restart_reasons(task: dict) -> list[str]:
    """Why each process of `task` but the last ended: the launcher's hang verdict, a root cause, or its code."""
    reasons = []
    for attempt in task.get("attempts", [])[:-1]:
        if attempt.get("killed_for"):
            reasons.append("hung")
        elif attempt.get("cause"):
            reasons.append(attempt["cause"].splitlines()[0])
        else:
            code = attempt.get("exit_code")
            reasons.append(f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit {code}")
    return reasons


def _duration(secs: Optional[float]) -> str:
    if secs is None:
        return "?"
    secs = int(secs)
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def render(runs: list[dict]) -> str:
    blocks = []
    for number, run in enumerate(runs, 1):
        start, end = parse_time(run.get("started")), parse_time(run.get("ended"))
        lines = [f"run {number}: {run.get('outcome', '?')} (exit {run.get('exit_code')}) at {run.get('started')}, "
                 f"{_duration(end - start if start and end else None)}"]
        if run.get("summary"):
            lines.append(f"  {run['summary'].splitlines()[0]}")
        start_step = run.get("global_step_start")
        lines.append(f"  steps: {'none' if start_step is None else start_step} -> {run.get('global_step_end')} "
                     f"(target {run.get('train_steps')}), model {run.get('model')}")
        restarts = [(task_name(t), t.get("restarts", 0), restart_reasons(t)) for t in run.get("tasks", [])]
        restarted = [f"{name} {n} ({', '.join(why)})" for name, n, why in restarts if n]
        lines.append(f"  restarts: {'; '.join(restarted) if restarted else 'none'}")
        moves = [f"{task_name(t)} {a['moved'].get('from')} -> {a['moved'].get('to')}"
                 for t in run.get("tasks", []) for a in t.get("attempts", []) if a.get("moved")]
        if moves:
            lines.append(f"  host moves: {'; '.join(moves)}")
        hangs = run.get("hangs") or []
        lines.append(f"  hangs: {len(hangs) if hangs else 'none'}")
        for hang in hangs:
            offset = hang.get("detected", hang.get("time", 0)) - start if start else None
            lines.append(f"    at +{_duration(offset)}: {hang.get('verdict')} -> {hang.get('action')}")
        stragglers = run.get("stragglers") or []
        lines.append("  stragglers: " + (", ".join(f"{s['task']} ({s['ratio']}x slower)" for s in stragglers)
                                         if stragglers else "none"))
        if run.get("eval"):
            metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                for k, v in run["eval"].get("metrics", {}).items())
            lines.append(f"  eval at step {run['eval'].get('step')}: {metrics}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no runs recorded"
