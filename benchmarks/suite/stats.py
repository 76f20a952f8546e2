"""Summaries of repeated runs: median, min, max and the ratio to a baseline.

The ratio is the scenario's median over the baseline's median, both taken
from runs interleaved on the same machine, so slow drift of a shared
machine's load cancels out; the raw samples stay in the JSON output for
anyone who wants another estimator.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int


def summarize(samples: list[float]) -> Summary | None:
    """Median, min and max of ``samples``; None for no samples."""
    if not samples:
        return None
    return Summary(statistics.median(samples), min(samples), max(samples), len(samples))


def ratio(median: float | None, baseline_median: float | None) -> float | None:
    """``median / baseline_median``; None when either is missing or the baseline is 0."""
    if median is None or not baseline_median:
        return None
    return median / baseline_median
