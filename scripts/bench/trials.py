"""Running trials: each announced on stderr; a failed one reported, and the benchmark goes on."""

from __future__ import annotations

import sys
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class BenchmarkError(Exception):
    """A trial that did not produce its figures."""


def announce(line: str) -> None:
    """A progress line on stderr (stdout is for the report)."""
    print(line, file=sys.stderr, flush=True)


def attempt(trial: Callable[[], T], errors: list[str]) -> Optional[T]:
    """Run one trial; a failed trial is reported and the benchmark goes on."""
    try:
        return trial()
    except BenchmarkError as e:
        print(f"FAILED: {e}", file=sys.stderr, flush=True)
        errors.append(str(e))
        return None


def read_runs(model_dir: str) -> list[dict]:
    """The runs of a model directory's run.json, as the plain JSON objects the file holds (the launcher's
    typed record, validated as `launcher report` reads it)."""
    from launcher.cluster import typed_json
    from launcher.launch import run_record

    return [typed_json.encode(run) for run in run_record.read(model_dir)]
