"""The HTML report: one self-contained page (inline SVG and CSS, no script, no network) for all runs.

Per run: the summary, then a timeline with one lane per task (each process a bar from start to end,
coloured by how it ended; its first step and session starts marked; why it ended in the bar's tooltip and
below), workers joining and leaving (`launcher scale`) as marks on their lanes, the hangs as vertical lines
with their verdicts, and the global step over time under the lanes.
"""

from __future__ import annotations

import html
import math
from typing import Iterable, Optional

from launcher.launch.run_record import Attempt, Run
from launcher.report.summary import first_line, parse_time, restart_reasons

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


def _e(value: object) -> str:
    """Any value as HTML text or attribute value: every `<>&"'` escaped. Nothing goes into the page raw."""
    return html.escape(str(value), quote=True)


def _finite(values: Iterable[Optional[float]]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _attempt_kind(attempt: Attempt) -> str:
    code = attempt.exit_code
    if attempt.killed_at_end:
        return "stopped"  # given up on after the chief's final save: not needed, not a failure
    if attempt.killed_for:
        return "hung"
    if code is None:
        return "running"
    if code == 0:
        return "done"
    if code < 0 or code >= 128:
        return "killed" if code in (-9, 137) else "stopped"
    return "failed"


# A change's mark on its task's lane: a path from the point of the change, its colour, and its words.
_MEMBERSHIP_MARKS = {"join": ("l6,-8 l0,16 z", "#3a9d5d", "joined"),
                     "leave": ("l-6,-8 l0,16 z", "#d9822b", "asked to leave"),
                     "left": ("m-4,-4 l8,8 m0,-8 l-8,8", "none", "left")}


def _timeline(run: Run) -> str:
    start = parse_time(run.started)
    times = _finite([t for task in run.tasks for a in task.attempts for t in (a.started, a.ended) if t]
                    + [h.detected for h in run.hangs] + [c.time for c in run.membership])
    if not times:
        return "<p>no task started</p>"
    t0 = min([start, *times]) if start else min(times)
    t1 = max([parse_time(run.ended) or 0, *times])
    span = max(t1 - t0, 1e-3)
    plot_w = WIDTH - LEFT - RIGHT

    def x(t: Optional[float]) -> str:
        """An attribute value: the x coordinate of time `t` (a number the page formats, never the record's)."""
        t = t if t is not None and math.isfinite(t) else t0
        return f"{LEFT + min(max((t - t0) / span, 0.0), 1.0) * plot_w:.1f}"

    lanes_h = LANE * len(run.tasks)
    height = lanes_h + STEP_H + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="11">']
    for i, task in enumerate(run.tasks):
        y = 10 + i * LANE
        out.append(f'<text x="4" y="{y + 14}">{_e(task.name)}</text>')
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y + 10}" y2="{y + 10}" stroke="#eee"/>')
        for n, attempt in enumerate(task.attempts, 1):
            a0, a1 = x(attempt.started or t0), x(attempt.ended or t1)
            kind = _attempt_kind(attempt)
            why = attempt.killed_for or attempt.cause or f"exit code {attempt.exit_code}"
            if attempt.host:
                why += f"; on {attempt.host}"
            out.append(f'<rect class="attempt {kind}" x="{a0}" y="{y + 3}" width="{max(float(a1) - float(a0), 2):.1f}"'
                       f' height="14" fill="{_COLOURS[kind]}" stroke="#fff" rx="2"><title>{_e(task.name)} process {n}: '
                       f'{_e(kind)}; {_e(why)}</title></rect>')
            if attempt.moved:
                moved = attempt.moved
                out.append(f'<path class="move" d="M{a0},{y} l5,-6 l-10,0 z" fill="#222"><title>moved from '
                           f'{_e(moved.from_host)} to {_e(moved.to)}: {_e(moved.why)}</title></path>')
            if attempt.first_step:
                out.append(f'<circle cx="{x(attempt.first_step)}" cy="{y + 10}" r="3" fill="#fff" '
                           f'stroke="#222"><title>first step</title></circle>')
            for session in attempt.sessions:
                sx = x(session.time)
                out.append(f'<line x1="{sx}" x2="{sx}" y1="{y + 1}" y2="{y + 19}" stroke="#222"><title>session at '
                           f'step {_e(session.step)}</title></line>')
    lane_of = {task.name: i for i, task in enumerate(run.tasks)}
    for change in run.membership:
        if change.task not in lane_of or change.change not in _MEMBERSHIP_MARKS:
            continue  # a record edited by hand: nothing to place
        y, cx = 10 + lane_of[change.task] * LANE, float(x(change.time))
        shape, colour, words = _MEMBERSHIP_MARKS[change.change]
        out.append(f'<path class="membership {_e(change.change)}" d="M{cx:.1f},{y + 10} {shape}" fill="{colour}" '
                   f'stroke="#222"><title>{_e(change.task)} {_e(words)} ({_e(change.workers)} workers after)'
                   f'</title></path>')
    for n, hang in enumerate(run.hangs, 1):
        hx = x(hang.detected)
        out.append(f'<line class="hang" x1="{hx}" x2="{hx}" y1="4" y2="{lanes_h + 14}" stroke="#c23b3b" '
                   f'stroke-width="2" stroke-dasharray="4 2"><title>hang {n}: {_e(hang.verdict)}</title>'
                   f'</line><text x="{float(hx) + 3:.1f}" y="{lanes_h + 24}" fill="#c23b3b">hang {n}</text>')
    # The global step over time.
    base = lanes_h + 40
    series = [(t, s) for t, s in run.global_step_series if math.isfinite(t)]
    target = run.train_steps if run.train_steps and run.train_steps > 0 else max([s for _, s in series] + [1])
    out.append(f'<text x="4" y="{base + 10}">global step</text>'
               f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base + STEP_H - 10}" y2="{base + STEP_H - 10}" '
               f'stroke="#999"/><text x="{LEFT - 4}" y="{base + 4}" text-anchor="end">{_e(target)}</text>')
    if series:
        points = " ".join(f"{x(t)},{base + STEP_H - 10 - (STEP_H - 20) * min(max(s / target, 0), 1):.1f}"
                          for t, s in series)
        out.append(f'<polyline class="steps" points="{points}" fill="none" stroke="#5b8def" stroke-width="1.5"/>')
    out.append(f'<text x="{LEFT}" y="{height - 4}">0 s</text><text x="{WIDTH - RIGHT}" y="{height - 4}" '
               f'text-anchor="end">{span:.0f} s</text></svg>')
    return "".join(out)


def _run_section(number: int, run: Run) -> str:
    ok = run.exit_code == 0
    rows = [("outcome", f'<span class="{"ok" if ok else "bad"}">{_e(run.outcome)}</span> '
                        f'(exit {_e(run.exit_code)})'),
            ("summary", _e(first_line(run.summary))),
            ("started / ended", f'{_e(run.started)} / {_e(run.ended)}'),
            ("global step", f'{_e(_or_none(run.global_step_start))} &rarr; {_e(run.global_step_end)} '
                            f'(target {_e(run.train_steps)})'),
            ("model", _e(run.model))]
    restarted = [f"{_e(t.name)}: {_e(t.restarts)} ({_e(', '.join(restart_reasons(t)))})"
                 for t in run.tasks if t.restarts]
    rows.append(("restarts", "<br>".join(restarted) or "none"))
    moves = [f"{_e(t.name)}: {_e(a.moved.from_host)} &rarr; {_e(a.moved.to)} ({_e(a.moved.why)})"
             for t in run.tasks for a in t.attempts if a.moved]
    if moves:
        rows.append(("host moves", "<br>".join(moves)))
    if run.membership:
        rows.append(("workers", "<br>".join(f"{_e(c.task)} {_e(_MEMBERSHIP_MARKS.get(c.change, ('', '', c.change))[2])}"
                                            f" &rarr; {_e(c.workers)} workers" for c in run.membership)))
    rows.append(("stragglers", ", ".join(f"{_e(s.task)} {_e(s.ratio)}&times; slower" for s in run.stragglers)
                 or "none"))
    if run.eval:
        rows.append(("eval", f"step {_e(run.eval.step)}: " + ", ".join(
            f"{_e(k)} {_e(v)}" for k, v in run.eval.metrics.items())))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    hangs = "".join(f'<div class="verdict">hang {n}: {_e(h.verdict)} &rarr; {_e(h.action)}'
                    + "".join(f"\nstacks of {_e(t)}: {_e(w)}" for t, w in h.stacks.items())
                    + "</div>" for n, h in enumerate(run.hangs, 1))
    causes = "".join(f'<div class="verdict">{_e(t.name)} process {n}: {_e(a.cause)}</div>'
                     for t in run.tasks for n, a in enumerate(t.attempts, 1) if a.cause)
    return (f'<section id="run-{number}"><h2>Run {number}</h2><table>{table}</table>'
            f"<h3>Timeline</h3>{_timeline(run)}{hangs}{causes}</section>")


def render(runs: list[Run], model_dir: Optional[str] = None) -> str:
    legend = "".join(f'<span><i style="background:{c}"></i>{k}</span>' for k, c in _COLOURS.items())
    sections = "".join(_run_section(n, run) for n, run in reversed(list(enumerate(runs, 1))))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>launcher report: '
            f'{_e(model_dir or "")}</title><style>{_CSS}</style></head><body><h1>Training runs in '
            f'{_e(model_dir or "")}</h1><p>{len(runs)} run(s), newest first. Bars: one process of a task, '
            f'coloured by how it ended (hover for why); circles: first step; ticks: sessions; dashed red '
            f'lines: hangs; triangles: a move to another host.</p><p class="legend">{legend}</p>{sections or "<p>no runs recorded</p>"}'
            f"</body></html>\n")
