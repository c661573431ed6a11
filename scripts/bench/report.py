"""The comparison's table: one row per spec, model and backend (medians over the repeats), with its legend."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from bench.floor import FloorResult
from bench.launcher_trial import LauncherResult
from bench.plain import PlainResult
from bench.table import fmt, format_table, median, with_notes
from launcher.cluster.spec import CHIEF, PS, WORKER

COLUMNS = ("spec", "model", "backend", "tasks", "floor s", "pre s", "1st step max s", "min s", "wkr wait s",
           "plain 1st s",
           "steps/s", "plain steps/s", "RSS max MB", "chief", "worker", "ps", "launcher", "plain MB")

LEGEND = """\
backend: local: task processes on this machine; ray: --backend ray, the launcher starts and stops a local
  Ray instance (in a loopback-only network namespace); floor and plain are the same on both rows
floor s: N bare processes import TensorFlow and start a server, launch to all ready (N = tasks)
pre s: launcher process start to its first task's start (process create times); ray: Ray's start included
1st step max/min s: run.json first_step_secs over chief and workers (* = a task never stepped); counted
  from the launcher's start (its CLI import, just after its interpreter starts), so pre s is part of it
wkr wait s: the chief's first session ready to the last worker's (run.json timelines); "-" with no
  workers. TensorFlow's stock WorkerSessionCreator polls every 30 s; the launcher's every 0.25 s
steps/s: median of the chief's global_step/sec summaries (every 100 steps; the first, with the
  warm-up, left out when 2 others remain); plain: one process, no cluster, timed after a warm-up
RSS MB: peak resident memory; max over tasks, then per role (max over its tasks), the launcher itself
  (Ray's own processes not included), and the plain process"""


def table_row(spec: str, model: str, backend: str, runs: list[LauncherResult], plains: list[PlainResult],
              floors: list[FloorResult]) -> list[str]:
    """The cells of one row: the medians of its launcher runs, and of the plain and floor trials beside them."""
    def med(get: Callable[[Any], Optional[float]], items: list) -> Optional[float]:
        return median(get(item) for item in items)

    incomplete = "*" if any(r.tasks_without_first_step for r in runs) else ""
    return [spec, model.rsplit(".", 1)[-1], backend, str(floors[0].processes) if floors else "-",
            fmt(med(lambda f: f.ready_secs, floors)), fmt(med(lambda r: r.prestart_secs, runs)),
            fmt(med(lambda r: r.first_step_max_secs, runs)) + incomplete,
            fmt(med(lambda r: r.first_step_min_secs, runs)), fmt(med(lambda r: r.worker_wait_secs, runs)),
            fmt(med(lambda p: p.first_step_secs, plains)),
            fmt(med(lambda r: r.steps_per_sec, runs), 0), fmt(med(lambda p: p.steps_per_sec, plains), 0),
            fmt(med(lambda r: r.rss_max(), runs), 0), fmt(med(lambda r: r.rss_max(CHIEF), runs), 0),
            fmt(med(lambda r: r.rss_max(WORKER), runs), 0), fmt(med(lambda r: r.rss_max(PS), runs), 0),
            fmt(med(lambda r: r.rss_mb.get("launcher"), runs), 0), fmt(med(lambda p: p.rss_mb, plains), 0)]


def report(results: dict[str, list], specs: Sequence[str], models: Sequence[str],
           backends: Sequence[str] = ("local",)) -> str:
    """The table, the reasons for skipped rows, the legend and the launcher runs' notes."""
    skipped = results.get("skipped", [])
    shown = [b for b in backends if not (b == "ray" and skipped)]
    rows = [table_row(spec, model, backend,
                      [r for r in results["launcher"] if (r.spec, r.model, r.backend) == (spec, model, backend)],
                      [p for p in results["plain"] if p.model == model],
                      [f for f in results["floor"] if f.spec == spec])
            for spec in specs for model in models for backend in shown]
    notes = [f"{r.spec} {r.model.rsplit('.', 1)[-1]} {r.backend}: {note}" for r in results["launcher"]
             for note in r.notes]
    return with_notes([format_table(rows, COLUMNS, left=3), *skipped, "", LEGEND], notes)
