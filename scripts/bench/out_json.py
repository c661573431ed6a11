"""What --out_json writes: every raw figure of every trial, failures and skipped rows included."""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.launcher_trial import LauncherResult


def to_json(results: dict[str, list]) -> dict[str, list]:
    """`results` as JSON-ready data: trials as dicts (a launcher run with its median steps_per_sec)."""
    def raw(item: Any) -> Any:
        if isinstance(item, LauncherResult):
            return {**dataclasses.asdict(item), "steps_per_sec": item.steps_per_sec}
        return dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item

    return {kind: [raw(item) for item in items] for kind, items in results.items()}
