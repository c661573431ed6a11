"""What --out_json writes: every raw figure of every trial, failures and skipped rows included."""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.launcher_trial import LauncherResult


def to_json(results: dict[str, Any]) -> dict[str, Any]:
    """`results` as JSON-ready data: trials as dicts (a launcher run with its median steps_per_sec); a
    group of kinds (the warm-start comparison's) as a dict of its own."""
    def raw(item: Any) -> Any:
        if isinstance(item, LauncherResult):
            return {**dataclasses.asdict(item), "steps_per_sec": item.steps_per_sec}
        if isinstance(item, tuple):
            return [raw(part) for part in item]
        return dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item

    return {kind: to_json(items) if isinstance(items, dict) else [raw(item) for item in items]
            for kind, items in results.items()}
