"""Per region and stream (writes, tokens, validations, dirty reads): gaps, availability, read-only service.

A gap runs from an ok completion to the next; a run of failures is one gap. Each stream's
measurements are one `StreamStats`; a region predicted Keystone read-only also gets a
`ReadOnlyService` (how it served once it should).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.check.history import Done
from toolkit.drills.checker.history import CONFLICT, DrillHistory
from toolkit.drills.faults import Bounds

MIN_GAP = 1.0  # seconds between two successes that count as a gap even without a failure in between
STREAMS = ("writes", "tokens", "validations", "dirty_reads")


@dataclass(frozen=True)
class Gap:
    """A stretch without success: from the last ok before it to the first ok after it (None: never)."""

    start: float
    end: float | None
    failures: int

    def seconds(self, horizon: float) -> float:
        """Its length, an open gap counted up to `horizon`."""
        return round((self.end if self.end is not None else horizon) - self.start, 3)

    def to_json(self, horizon: float) -> dict[str, Any]:
        """{"start", "end", "seconds", "failures"}."""
        return {
            "start": round(self.start, 3),
            "end": None if self.end is None else round(self.end, 3),
            "seconds": self.seconds(horizon),
            "failures": self.failures,
        }


def gaps(
    ops: Iterable[Done], begin: float, min_gap: float = MIN_GAP, answered: frozenset[str] = frozenset()
) -> list[Gap]:
    """The gaps of one stream of operations, in time order.

    A gap runs from an ok completion (or `begin`, the stream's start) to the next ok
    completion; it counts when an operation failed or stayed unknown in between, or when
    it lasted at least `min_gap`. A stream that never succeeds again ends in an open gap.
    Failures whose error class is in `answered` count as ok: the endpoint answered (a
    write that lost a certification race to another region's).
    """
    ops = list(ops)
    done = sorted((d for d in ops if d.end is not None), key=lambda d: d.t1)
    out: list[Gap] = []
    last_ok, failures = begin, 0
    for d in done:
        if d.type == "ok" or (d.end is not None and d.end.error in answered):
            if failures or d.t1 - last_ok >= min_gap:
                out.append(Gap(last_ok, d.t1, failures))
            last_ok, failures = d.t1, 0
        else:
            failures += 1
    pending = any(d.end is None for d in ops)
    if failures or pending:
        out.append(Gap(last_ok, None, failures))
    return out


def longest(found: list[Gap], lo: float, hi: float, horizon: float) -> Gap | None:
    """The longest gap that overlaps [lo, hi]."""
    overlapping = [g for g in found if g.start < hi and (g.end is None or g.end > lo)]
    return max(overlapping, key=lambda g: g.seconds(horizon), default=None)


def availability(ops: Iterable[Done], lo: float, hi: float) -> dict[str, Any]:
    """Counts of operations invoked in [lo, hi] by outcome, and ok / attempts."""
    counts = {"ok": 0, "fail": 0, "info": 0, "pending": 0}
    for d in ops:
        if lo <= d.t0 <= hi:
            counts[d.type] += 1
    total = sum(counts.values())
    return {**counts, "availability": round(counts["ok"] / total, 4) if total else None}


@dataclass(frozen=True)
class StreamStats:
    """One stream of one region: outcomes in the fault window, its gaps, its recovery after the heal."""

    counts: dict[str, Any]  # ok, fail, info, pending, availability (`availability()`)
    max_gap_fault: float | None  # the longest gap overlapping the fault window
    max_gap: float | None  # the longest gap overlapping the fault window → end (the failover gap)
    gaps: tuple[Gap, ...]  # those ≥ MIN_GAP or with failures
    horizon: float
    first_ok_after_heal: float | None
    conflicts: int | None = None  # writes: lost certification races in the window

    @property
    def ok(self) -> int:
        """Operations that succeeded in the window."""
        return int(self.counts["ok"])

    @property
    def refused(self) -> int:
        """Operations that failed or stayed unknown in the window."""
        return int(self.counts["fail"]) + int(self.counts["info"])

    @property
    def availability(self) -> float | None:
        """ok / attempts in the window."""
        value = self.counts["availability"]
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        """The report's form (`conflicts` for writes only)."""
        data = {
            **self.counts,
            "max_gap_fault": self.max_gap_fault,
            "max_gap": self.max_gap,
            "gaps": [g.to_json(self.horizon) for g in self.gaps],
            "first_ok_after_heal": self.first_ok_after_heal,
        }
        if self.conflicts is not None:
            data["conflicts"] = self.conflicts
        return data


@dataclass(frozen=True)
class Served:
    """Token requests answered out of those made in a window."""

    ok: int
    attempts: int
    availability: float | None  # ok / attempts (None: no attempt)

    @classmethod
    def of(cls, window: list[Done]) -> Served:
        """Count the window's operations."""
        ok = sum(1 for d in window if d.type == "ok")
        return cls(ok, len(window), round(ok / len(window), 4) if window else None)


@dataclass(frozen=True)
class ReadOnlyService:
    """How a cut-off region's Keystone served while read-only (times after the injection)."""

    since: float
    until: float
    non_primary_at: float | None
    tokens: Served
    validations: Served

    def to_json(self) -> dict[str, Any]:
        """The report's `read_only` entry: since, until, non_primary_at, tokens, validations."""
        return asdict(self)


@dataclass(frozen=True)
class RegionStats:
    """Every stream of one region, and its read-only service where predicted."""

    streams: dict[str, StreamStats] = field(default_factory=dict)
    read_only: ReadOnlyService | None = None

    def to_json(self) -> dict[str, Any]:
        """The report's `measurements.regions.R` entry."""
        data: dict[str, Any] = {name: s.to_json() for name, s in self.streams.items()}
        if self.read_only is not None:
            data["read_only"] = self.read_only.to_json()
        return data


def read_only_service(h: DrillHistory, region: str, bounds: Bounds) -> ReadOnlyService:
    """How a cut-off region's Keystone served while read-only: tokens issued and validated through it.

    Measured from when the region may be expected to serve read-only: its Galera nodes said
    non-Primary (else the fault plus Galera's detection bound), plus HAProxy's detection
    bound (the write listener falls back to the nodes serving dirty reads) and the slack,
    until the heal began.
    """
    assert h.inject is not None
    f1 = h.inject.t1 if h.inject.end else h.inject.t0
    until = h.heal.t0 if h.heal else h.end
    settled = h.first_state(region, "non-Primary", f1, until)
    since = (settled if settled is not None else f1 + bounds.galera_detection) + bounds.haproxy_detection + bounds.slack

    def served(stream: list[Done]) -> Served:
        return Served.of([d for d in stream if since <= d.t0 and d.t1 <= until])

    return ReadOnlyService(
        since=round(since - f1, 3),
        until=round(until - f1, 3),
        non_primary_at=None if settled is None else round(settled - f1, 3),
        tokens=served(h.tokens(region)),
        validations=served(h.validations(region)),
    )


def stream_stats(h: DrillHistory, region: str, name: str, stream: list[Done]) -> StreamStats:
    """The measurements of one non-empty stream."""
    horizon, f0, h1 = h.end, h.f0, h.h1
    every = h.writes(region, conflicts=True) if name == "writes" else stream
    found = gaps(every, h.workload_start, answered=frozenset({CONFLICT}) if name == "writes" else frozenset())
    fault_gap = longest(found, f0, horizon, horizon) if f0 is not None else None
    during = longest(found, f0, h.window_end, horizon) if f0 is not None else None
    after_heal = [d for d in stream if h1 is not None and d.t0 >= h1 and d.type == "ok"]
    lo, hi = (f0, h.window_end) if f0 is not None else (0.0, horizon)
    conflicts = None
    if name == "writes":  # answered by a Primary node, lost to a concurrent write on the shared row
        conflicts = sum(1 for d in every if lo <= d.t0 <= hi and d.end is not None and d.end.error == CONFLICT)
    return StreamStats(
        counts=availability(stream, lo, hi),
        max_gap_fault=None if during is None else during.seconds(horizon),
        max_gap=None if fault_gap is None else fault_gap.seconds(horizon),
        gaps=tuple(g for g in found if g.seconds(horizon) >= MIN_GAP or g.failures),
        horizon=horizon,
        first_ok_after_heal=round(min(d.t1 for d in after_heal) - h1, 3) if after_heal and h1 else None,
        conflicts=conflicts,
    )


def measure_regions(h: DrillHistory) -> tuple[dict[str, RegionStats], dict[str, dict[str, list[tuple[float, str]]]]]:
    """Every region's `RegionStats`, and its streams as (completion time, type) for the timeline."""
    stats: dict[str, RegionStats] = {}
    timelines: dict[str, dict[str, list[tuple[float, str]]]] = {}
    for r in h.regions:
        timelines[r] = {}
        streams: dict[str, StreamStats] = {}
        for name, stream in zip(STREAMS, (h.writes(r), h.tokens(r), h.validations(r), h.dirty(r)), strict=True):
            timelines[r][name] = [(round(d.t1, 3), d.type) for d in stream if d.end is not None]
            if stream:
                streams[name] = stream_stats(h, r, name, stream)
        read_only = None
        if h.prediction.regions.get(r, {}).get("keystone") == "read-only" and h.inject is not None:
            read_only = read_only_service(h, r, h.bounds)
        stats[r] = RegionStats(streams, read_only)
    return stats, timelines
