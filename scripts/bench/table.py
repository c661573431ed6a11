"""Plain-text tables of figures, as both of the benchmark's reports print them."""

from __future__ import annotations

import statistics
from typing import Iterable, Optional, Sequence


def median(values: Iterable[Optional[float]]) -> Optional[float]:
    """The median of the values present (None: a trial without that figure), or None."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_int(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def format_table(rows: list[list[str]], columns: Sequence[str], left: int) -> str:
    """`left`: how many leading columns are text (left-aligned); the rest are numbers."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def with_notes(lines: list[str], notes: list[str]) -> str:
    """A report's lines, then its trials' notes under "notes:" when there are any."""
    if notes:
        lines = [*lines, "", "notes:", *notes]
    return "\n".join(lines)
