"""What the verify checker measures but does not judge: RTT, counts, latency, staleness, visibility.

A faulty region is expected to be stale or down, so none of this makes a verdict; it is
reported per region (`RegionReport`) and per writer→reader pair (`visibility`). Each
function reads the history (`facts.Facts`) for one measurement.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from toolkit.check import stats
from toolkit.check.facts import Facts
from toolkit.check.history import Done

CONFLICT = "certification-conflict"


@dataclass
class RegionReport:
    """What one region's worker did and saw."""

    name: str
    writes: Counter[str] = field(default_factory=Counter)  # ok / fail / info / pending
    reads: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    commit_latency: dict[str, Any] = field(default_factory=dict)
    commit_latency_rtt: dict[str, Any] | None = None
    checked_reads: int = 0
    stale_reads: int = 0
    max_staleness: float | None = None
    max_behind: int = 0
    rtt: float | None = None

    conflicts: int = 0  # certification conflicts among the failed writes
    statuses: Counter[str] = field(default_factory=Counter)  # wsrep_cluster_status seen; "failed" if none

    @staticmethod
    def _availability(c: Counter[str], excluded: int = 0) -> float | None:
        total = sum(c.values()) - excluded
        return round(c["ok"] / total, 4) if total > 0 else None

    @property
    def write_availability(self) -> float | None:
        """Acknowledged writes / attempts, not counting attempts that lost a certification race."""
        return self._availability(self.writes, self.conflicts)

    @property
    def read_availability(self) -> float | None:
        """Successful reads / attempts."""
        return self._availability(self.reads)

    @property
    def failed_writes(self) -> int:
        """Writes that failed or ended unknown, not counting lost certification races."""
        return self.writes["fail"] + self.writes["info"] - self.conflicts

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return {
            "writes": {k: self.writes[k] for k in ("ok", "fail", "info", "pending")},
            "certification_conflicts": self.conflicts,
            "write_availability": self.write_availability,
            "reads": {k: self.reads[k] for k in ("ok", "fail", "info", "pending")},
            "read_availability": self.read_availability,
            "commit_latency": self.commit_latency,
            "commit_latency_rtt": self.commit_latency_rtt,
            "checked_reads": self.checked_reads,
            "stale_reads": self.stale_reads,
            "max_staleness": self.max_staleness,
            "max_behind": self.max_behind,
            "errors": dict(sorted(self.errors.items())),
            "rtt": self.rtt,
            "status": dict(sorted(self.statuses.items())),
        }


@dataclass(frozen=True)
class Rtt:
    """Per region, the median of the setup's TCP connects to its nodes; the largest is the reference."""

    per_region: dict[str, float]
    reference: float | None

    def to_json(self) -> dict[str, Any]:
        """{"per_region": {region: s}, "reference": s|null}."""
        return {"per_region": self.per_region, "reference": self.reference}


def rtt(facts: Facts) -> Rtt:
    """The RTT the setup measured."""
    samples: dict[str, list[float]] = defaultdict(list)
    for d in facts.done:
        if d.start.f == "rtt" and d.type == "ok" and d.end is not None and isinstance(d.end.value, (int, float)):
            samples[d.start.region or "?"].append(float(d.end.value))
    per_region = {r: round(stats.median(v) or 0.0, 6) for r, v in samples.items()}
    return Rtt(per_region, max(per_region.values()) if per_region else None)


def errors(facts: Facts, regions: dict[str, RegionReport]) -> dict[str, int]:
    """Failed and indeterminate operations by error class: all of them, and each region's."""
    total: Counter[str] = Counter()
    for d in facts.done:
        if d.end is not None and d.end.type in ("fail", "info"):
            total[d.end.error or "error"] += 1
            if d.start.process in regions:
                regions[d.start.process].errors[d.end.error or "error"] += 1
    return dict(sorted(total.items()))


def counts(facts: Facts, regions: dict[str, RegionReport]) -> None:
    """Each region's writes, certification conflicts, reads and the cluster status it saw."""
    for d in facts.incr:
        regions[d.start.process].writes[d.type] += 1
        if d.end is not None and d.end.error == CONFLICT:
            regions[d.start.process].conflicts += 1
    for d in facts.reads:
        regions[d.start.process].reads[d.type] += 1
    for d in facts.status:
        value = d.end.value if d.end is not None and d.type == "ok" else None
        regions[d.start.process].statuses[str(value.get("status")) if isinstance(value, dict) else "failed"] += 1


def commit_latency(facts: Facts, regions: dict[str, RegionReport], measured: Rtt) -> None:
    """Each region's commit latency percentiles, also as a multiple of the reference RTT."""
    oks = facts.oks
    for name, report in regions.items():
        latencies = [d.end.latency for d in oks if d.start.process == name and d.end and d.end.latency is not None]
        report.commit_latency = stats.summary(latencies)
        report.rtt = measured.per_region.get(name)
        reference = measured.reference
        if reference and latencies:
            report.commit_latency_rtt = {
                k: round(v / reference, 1)
                for k in ("p50", "p95", "p99")
                if isinstance(v := report.commit_latency.get(k), (int, float))
            }


def stale_reads(facts: Facts, regions: dict[str, RegionReport]) -> None:
    """First reads missing a write acknowledged before they began: how many, how stale, how far behind."""
    acks: dict[str, list[tuple[float, int]]] = defaultdict(list)  # row -> (ack time, value), by time
    for d in sorted(facts.oks, key=lambda d: d.t1):
        for row, value in d.values.items():
            acks[row].append((d.t1, value))
    ack_times = {row: [t for t, _ in items] for row, items in acks.items()}
    running_max: dict[str, list[int]] = {}
    for row, items in acks.items():
        best, out = -1, []
        for _, value in items:
            best = max(best, value)
            out.append(best)
        running_max[row] = out
    for d in facts.reads:
        if d.type != "ok" or (d.start.poll or 0) != 0:
            continue
        report = regions[d.start.process]
        report.checked_reads += 1
        behind = 0
        oldest_missed: float | None = None
        for row, times in ack_times.items():
            k = bisect.bisect_left(times, d.t0)  # acks strictly before the read began
            if k == 0:
                continue
            required = running_max[row][k - 1]
            have = d.values.get(row, -1)
            if have < required:
                behind += required - have
                # the earliest acknowledged write this read misses
                first = next(t for t, v in acks[row][:k] if v > have)
                oldest_missed = first if oldest_missed is None else min(oldest_missed, first)
        if behind:
            report.stale_reads += 1
            report.max_behind = max(report.max_behind, behind)
            age = round(d.t0 - (oldest_missed or d.t0), 6)
            report.max_staleness = age if report.max_staleness is None else max(report.max_staleness, age)


def visibility(facts: Facts) -> dict[str, dict[str, Any]]:
    """Visibility lag per writer -> reader region, on the writer's own counter (an upper bound)."""
    out: dict[str, dict[str, Any]] = {}
    for reader in facts.regions:
        seen = sorted((d for d in facts.reads if d.start.process == reader and d.type == "ok"), key=lambda d: d.t1)
        for writer in facts.regions:
            out[f"{writer}->{reader}"] = _lag(facts.oks, writer, seen)
    return out


def _lag(oks: tuple[Done, ...], writer: str, seen: list[Done]) -> dict[str, Any]:
    """How long `writer`'s acknowledged increments took to show in the reads `seen` (sorted by completion)."""
    times = [d.t1 for d in seen]
    best, prefix = -1, []
    for d in seen:
        best = max(best, d.values.get(writer, -1))
        prefix.append(best)
    last_read = seen[-1].t0 if seen else float("-inf")
    lags, never = [], 0
    for d in oks:
        if d.start.process != writer or writer not in d.values:
            continue
        idx = bisect.bisect_left(prefix, d.values[writer])
        if idx < len(prefix):
            lags.append(max(0.0, times[idx] - d.t1))
        elif d.t1 < last_read:
            never += 1  # acknowledged before the reader's last read, never seen by it
    s = stats.summary(lags, points=(50, 95))
    return {"n": s["n"], "p50": s["p50"], "p95": s["p95"], "max": s["max"], "never": never}
