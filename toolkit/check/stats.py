"""Percentiles and latency summaries for check reports (linear interpolation, like numpy's default)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0–100) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, not {p}")
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float | None:
    """The 50th percentile."""
    return percentile(values, 50)


def summary(values: Iterable[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float | int | None]:
    """`{"n", "p50", "p95", "p99", "max", "mean"}` of `values` (None entries when empty)."""
    data = list(values)
    out: dict[str, float | int | None] = {"n": len(data)}
    for p in points:
        value = percentile(data, p)
        out[f"p{p}"] = None if value is None else round(value, 6)
    out["max"] = round(max(data), 6) if data else None
    out["mean"] = round(sum(data) / len(data), 6) if data else None
    return out
