"""The HTML report: one self-contained page (inline SVG and CSS, no script, no network) for all runs.

Per run: the summary, then a timeline with one lane per task (each process a bar from start to end,
coloured by how it ended; its first step and session starts marked; why it ended in the bar's tooltip and
below), the hangs as vertical lines with their verdicts, and the global step over time under the lanes.
"""

from __future__ import annotations

import html
from typing import Optional

from launcher.report.summary import parse_time, restart_reasons, task_name

WIDTH, LEFT, RIGHT, LANE, STEP_H = 900, 90, 20, 26, 120
_COLOURS = {"done": "#3a9d5d", "hung": "#d9822b", "killed": "#e0b341", "failed": "#c23b3b",
            "stopped": "#8a8f98", "running": "#5b8def"}
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
h2{margin-top:2em;border-bottom:1px solid #ccc}.ok{color:#3a9d5d}.bad{color:#c23b3b}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}
.verdict{font-family:monospace;white-space:pre-wrap;background:#fdf3e7;padding:6px;margin:4px 0}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:middle}"""


def _or_none(step: object) -> object:
    return "none (no checkpoint)" if step is None else step


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _attempt_kind(attempt: dict) -> str:
    code = attempt.get("exit_code")
    if attempt.get("killed_at_end"):
        return "stopped"  # given up on after the chief's final save: not needed, not a failure
    if attempt.get("killed_for"):
        return "hung"
    if code is None:
        return "running"
    if code == 0:
        return "done"
    if code < 0 or code >= 128:
        return "killed" if code in (-9, 137) else "stopped"
    return "failed"


def _timeline(run: dict) -> str:
    start = parse_time(run.get("started"))
    tasks = run.get("tasks", [])
    times = [t for task in tasks for a in task.get("attempts", []) for t in (a.get("started"), a.get("ended"))
             if t] + [h.get("time", 0) for h in run.get("hangs") or []]
    if not times:
        return "<p>no task started</p>"
    t0 = min([start] if start else [] + times) if start else min(times)
    t0 = min([t0, *times])
    t1 = max([parse_time(run.get("ended")) or 0, *times])
    span = max(t1 - t0, 1e-3)
    plot_w = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    lanes_h = LANE * len(tasks)
    height = lanes_h + STEP_H + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="11">']
    for i, task in enumerate(tasks):
        y = 10 + i * LANE
        out.append(f'<text x="4" y="{y + 14}">{_e(task_name(task))}</text>')
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y + 10}" y2="{y + 10}" stroke="#eee"/>')
        for n, attempt in enumerate(task.get("attempts", []), 1):
            a0, a1 = attempt.get("started") or t0, attempt.get("ended") or t1
            kind = _attempt_kind(attempt)
            why = attempt.get("killed_for") or attempt.get("cause") or f"exit code {attempt.get('exit_code')}"
            if attempt.get("host"):
                why += f"; on {attempt['host']}"
            out.append(f'<rect class="attempt {kind}" x="{x(a0):.1f}" y="{y + 3}" width="{max(x(a1) - x(a0), 2):.1f}"'
                       f' height="14" fill="{_COLOURS[kind]}" stroke="#fff" rx="2"><title>{_e(task_name(task))} process {n}: '
                       f'{_e(kind)}; {_e(why)}</title></rect>')
            if attempt.get("moved"):
                moved = attempt["moved"]
                out.append(f'<path class="move" d="M{x(a0):.1f},{y} l5,-6 l-10,0 z" fill="#222"><title>moved from '
                           f'{_e(moved.get("from"))} to {_e(moved.get("to"))}: {_e(moved.get("why"))}</title></path>')
            if attempt.get("first_step"):
                out.append(f'<circle cx="{x(attempt["first_step"]):.1f}" cy="{y + 10}" r="3" fill="#fff" '
                           f'stroke="#222"><title>first step</title></circle>')
            for session in attempt.get("sessions", []):
                out.append(f'<line x1="{x(session["time"]):.1f}" x2="{x(session["time"]):.1f}" y1="{y + 1}" '
                           f'y2="{y + 19}" stroke="#222"><title>session at step {session["step"]}</title></line>')
    for n, hang in enumerate(run.get("hangs") or [], 1):
        hx = x(hang.get("detected", hang.get("time", t0)))
        out.append(f'<line class="hang" x1="{hx:.1f}" x2="{hx:.1f}" y1="4" y2="{lanes_h + 14}" stroke="#c23b3b" '
                   f'stroke-width="2" stroke-dasharray="4 2"><title>hang {n}: {_e(hang.get("verdict"))}</title>'
                   f'</line><text x="{hx + 3:.1f}" y="{lanes_h + 24}" fill="#c23b3b">hang {n}</text>')
    # The global step over time.
    base = lanes_h + 40
    series = run.get("global_step_series") or []
    target = run.get("train_steps") or max([s for _, s in series] or [1])
    out.append(f'<text x="4" y="{base + 10}">global step</text>'
               f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base + STEP_H - 10}" y2="{base + STEP_H - 10}" '
               f'stroke="#999"/><text x="{LEFT - 4}" y="{base + 4}" text-anchor="end">{_e(target)}</text>')
    if series:
        points = " ".join(f"{x(t):.1f},{base + STEP_H - 10 - (STEP_H - 20) * min(s / target, 1):.1f}"
                          for t, s in series)
        out.append(f'<polyline class="steps" points="{points}" fill="none" stroke="#5b8def" stroke-width="1.5"/>')
    out.append(f'<text x="{LEFT}" y="{height - 4}">0 s</text><text x="{WIDTH - RIGHT}" y="{height - 4}" '
               f'text-anchor="end">{span:.0f} s</text></svg>')
    return "".join(out)


def _run_section(number: int, run: dict) -> str:
    ok = run.get("exit_code") == 0
    rows = [("outcome", f'<span class="{"ok" if ok else "bad"}">{_e(run.get("outcome"))}</span> '
                        f'(exit {_e(run.get("exit_code"))})'),
            ("summary", _e((run.get("summary") or "").splitlines()[0] if run.get("summary") else "")),
            ("started / ended", f'{_e(run.get("started"))} / {_e(run.get("ended"))}'),
            ("global step", f'{_e(_or_none(run.get("global_step_start")))} &rarr; {_e(run.get("global_step_end"))} '
                            f'(target {_e(run.get("train_steps"))})'),
            ("model", _e(run.get("model")))]
    restarted = [f"{_e(task_name(t))}: {t.get('restarts')} ({_e(', '.join(restart_reasons(t)))})"
                 for t in run.get("tasks", []) if t.get("restarts")]
    rows.append(("restarts", "<br>".join(restarted) or "none"))
    moves = [f"{_e(task_name(t))}: {_e(a['moved'].get('from'))} &rarr; {_e(a['moved'].get('to'))} "
             f"({_e(a['moved'].get('why'))})" for t in run.get("tasks", []) for a in t.get("attempts", [])
             if a.get("moved")]
    if moves:
        rows.append(("host moves", "<br>".join(moves)))
    stragglers = run.get("stragglers") or []
    rows.append(("stragglers", ", ".join(f"{_e(s['task'])} {s['ratio']}&times; slower" for s in stragglers)
                 or "none"))
    if run.get("eval"):
        rows.append(("eval", f"step {_e(run['eval'].get('step'))}: " + ", ".join(
            f"{_e(k)} {_e(v)}" for k, v in (run["eval"].get("metrics") or {}).items())))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    hangs = "".join(f'<div class="verdict">hang {n}: {_e(h.get("verdict"))} &rarr; {_e(h.get("action"))}'
                    + "".join(f"\nstacks of {_e(t)}: {_e(w)}" for t, w in (h.get("stacks") or {}).items())
                    + "</div>" for n, h in enumerate(run.get("hangs") or [], 1))
    causes = "".join(f'<div class="verdict">{_e(task_name(t))} process {n}: {_e(a.get("cause"))}</div>'
                     for t in run.get("tasks", []) for n, a in enumerate(t.get("attempts", []), 1)
                     if a.get("cause"))
    return (f'<section id="run-{number}"><h2>Run {number}</h2><table>{table}</table>'
            f"<h3>Timeline</h3>{_timeline(run)}{hangs}{causes}</section>")


def render(runs: list[dict], model_dir: Optional[str] = None) -> str:
    legend = "".join(f'<span><i style="background:{c}"></i>{k}</span>' for k, c in _COLOURS.items())
    sections = "".join(_run_section(n, run) for n, run in reversed(list(enumerate(runs, 1))))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>launcher report: '
            f'{_e(model_dir or "")}</title><style>{_CSS}</style></head><body><h1>Training runs in '
            f'{_e(model_dir or "")}</h1><p>{len(runs)} run(s), newest first. Bars: one process of a task, '
            f'coloured by how it ended (hover for why); circles: first step; ticks: sessions; dashed red '
            f'lines: hangs; triangles: a move to another host.</p><p class="legend">{legend}</p>{sections or "<p>no runs recorded</p>"}'
            f"</body></html>\n")
