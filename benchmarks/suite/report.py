"""The suite's two outputs: an aligned text table and the same rows as JSON."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from benchmarks.suite.runner import Row, RunRecord

COLUMNS = ("scenario", "metric", "unit", "size", "median", "min", "max", "baseline", "ratio", "goal", "met", "note")


def number(value: float | None) -> str:
    """A figure with about three significant digits, never in exponent form."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cells(row: Row) -> tuple[str, ...]:
    met = {True: "yes", False: "NO", None: ""}[row.met]
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    return (
        row.scenario,
        row.metric,
        row.unit,
        row.size,
        number(row.median),
        number(row.min),
        number(row.max),
        number(row.baseline_median),
        ratio,
        row.goal,
        met,
        row.note,
    )


def table(rows: list[Row]) -> str:
    """Rows as a fixed-width table; the note column is left unpadded at the end."""
    lines = [COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    out = []
    for n, line in enumerate(lines):
        text = "  ".join(cell.ljust(w) for cell, w in zip(line, widths))
        out.append(f"{text}  {line[-1]}".rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(out)


def document(rows: list[Row], runs: list[RunRecord], *, quick: bool, repeat: int, started: str, seconds: float, is_root: bool) -> dict[str, Any]:
    """The JSON form: every row (with raw samples), every run in order, the machine."""
    return {
        "quick": quick,
        "repeat": repeat,
        "started": started,
        "seconds": round(seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "root": is_root,
        },
        "rows": [r.to_json() for r in rows],
        "runs": [vars(r) for r in runs],
    }
