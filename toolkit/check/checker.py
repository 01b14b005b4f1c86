"""The verify checker: reads only a history (see `history`) and says whether it is valid.

Anomalies (any one makes the verdict `anomalies`, exit 1):

- `lost-write`: an acknowledged (ok) increment whose value is missing from the final
  state of every node that was Primary at the end (its counter ended lower).
- `divergent`: the final states of the Primary nodes disagree (some have it, some not).
- `lost-update`: two acknowledged increments of one counter wrote the same value, so
  one overwrote the other.
- `non-primary-write`: an increment acknowledged by a node that reported non-Primary
  both in the status just before it and in the status just after it. The node is the
  one that served the transaction (recorded in it: through a VIP a region's write may be
  served by another region's Primary node, as HAProxy's backup), else the region's own.
- `unexpected-write`: a counter grew more than the acknowledged plus the indeterminate
  (info) increments: a write reported as failed took effect, or another writer ran.

`info` operations (outcome unknown) are never counted as lost: they may or may not
have committed. Measured, not judged (a faulty region is expected to be stale or down):
stale reads (a first read missing a write acknowledged before it began), their maximum
staleness (the age of the oldest acknowledged write missed) and lag in increments,
commit latency percentiles (also as a multiple of the measured RTT), visibility lag per
writer→reader region pair, errors by class and availability per region (acknowledged
writes over attempts, not counting attempts that lost a certification race: the region
answered, another region won the shared row).

Visibility lag is an upper bound: the completion of the first read in the reader's
region that shows the write, minus the write's acknowledgement (0 if seen earlier);
its resolution is the reader's read interval.

Verdicts: `valid` (exit 0), `anomalies` (1), `inconclusive` (2: no increment was
acknowledged, or no Primary node could be read at the end, so lost writes cannot be
ruled out). JSON schema "kgt.check.verify/1", see `VerifyReport.to_json`.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolkit.check import stats
from toolkit.check.history import Done, Op, pairs
from toolkit.check.state import State

SCHEMA = "kgt.check.verify/1"
SHARED = "shared"
BOOKKEEPING = ("setup", "final")


@dataclass(frozen=True)
class Anomaly:
    """One violation found in the history."""

    kind: str
    row: str | None
    value: int | None
    region: str | None
    index: int | None  # history index of the operation (its completion) concerned
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return {
            "kind": self.kind,
            "row": self.row,
            "value": self.value,
            "region": self.region,
            "index": self.index,
            "detail": self.detail,
        }


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


@dataclass
class VerifyReport:
    """The checker's result."""

    state: State
    verdict: str  # valid | anomalies | inconclusive
    summary: str
    duration: float
    operations: int
    rows: list[str]
    regions: dict[str, RegionReport]
    visibility: dict[str, dict[str, Any]]
    errors: dict[str, int]
    anomalies: list[Anomaly]
    acknowledged: int
    lost: int
    rtt: dict[str, Any]
    initial: dict[str, int] | None
    final: dict[str, dict[str, Any]]
    final_checked: bool

    def line(self) -> str:
        """`STATE: summary`."""
        return f"{self.state.label}: {self.summary}"

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form.

        {"schema": "kgt.check.verify/1", "state": "OK|WARNING|CRITICAL|UNKNOWN", "code": 0-3,
         "verdict": "valid|anomalies|inconclusive", "summary": str, "duration": s, "operations": n,
         "acknowledged": n (ok increments), "lost": n (lost-write anomalies), "rows": [str],
         "rtt": {"per_region": {region: s}, "reference": s|null},
         "regions": {region: {
             "writes": {"ok", "fail", "info", "pending": n}, "certification_conflicts": n,
             "write_availability": 0-1|null, "reads": {same keys}, "read_availability": 0-1|null,
             "commit_latency": {"n", "p50", "p95", "p99", "max", "mean"},
             "commit_latency_rtt": {"p50", "p95", "p99"}|null, "checked_reads": n, "stale_reads": n,
             "max_staleness": s|null, "max_behind": n, "errors": {class: n}, "rtt": s|null,
             "status": {"Primary" | "non-Primary" | … | "failed": n}}},
         "visibility": {"WRITER->READER": {"n", "p50", "p95", "max", "never"}},
         "errors": {class: n}, "anomalies": [{"kind", "row", "value", "region", "index", "detail"}],
         "initial": {row: n}|null,
         "final": {"checked": bool, "nodes": {host: {"status": str|null, "values": {row: n}|null}}}}

        Times are seconds. `kgt check verify` adds "through" (vip|nodes), "mode" (concurrent|lockstep), "history"
        (path|null) and "cleanup" (what --cleanup dropped, one line | null).
        """
        return {
            "schema": SCHEMA,
            "state": self.state.label,
            "code": int(self.state),
            "verdict": self.verdict,
            "summary": self.summary,
            "duration": round(self.duration, 3),
            "operations": self.operations,
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "rows": self.rows,
            "rtt": self.rtt,
            "regions": {name: r.to_json() for name, r in self.regions.items()},
            "visibility": self.visibility,
            "errors": self.errors,
            "anomalies": [a.to_json() for a in self.anomalies],
            "initial": self.initial,
            "final": {"checked": self.final_checked, "nodes": self.final},
        }


def _regions(ops: Sequence[Op]) -> list[str]:
    """The workers' regions: in the order the setup measured them (the topology's), then as they appear."""
    setup = [op.region for op in ops if op.process == "setup" and op.f == "rtt" and op.region]
    workers = [op.process for op in ops if op.process not in BOOKKEEPING]
    present = set(workers)
    return list(dict.fromkeys([*(r for r in setup if r in present), *workers]))


def _non_primary_writes(oks: list[Done], status: list[Done]) -> list[Anomaly]:
    """Acknowledged increments whose serving node reported non-Primary before and after them.

    The serving node is the one the transaction recorded (`node`: through a VIP, a region's
    write may be served by another region's Primary node, as HAProxy's backup), judged by
    the status samples that name it; a history without it falls back to the samples of the
    increment's own region (its endpoint's node).
    """
    samples: dict[str, list[Done]] = defaultdict(list)
    for d in sorted((d for d in status if d.type == "ok" and isinstance(d.value, dict)), key=lambda d: d.t0):
        samples[f"region:{d.start.process}"].append(d)
        if d.value.get("node"):
            samples[f"node:{d.value['node']}"].append(d)
    out = []
    for d in oks:
        node = d.value.get("node") if isinstance(d.value, dict) else None
        mine = samples.get(f"node:{node}" if node else f"region:{d.start.process}", [])
        starts = [x.t0 for x in mine]
        i = bisect.bisect_left(starts, d.t0)
        before = mine[i - 1] if i > 0 and mine[i - 1].t1 <= d.t0 else None
        j = bisect.bisect_left(starts, d.t1)
        after = mine[j] if j < len(mine) else None
        if before and after and all(x.value.get("status") != "Primary" for x in (before, after)):
            name = d.start.process
            served = f"{node} (through {d.start.host})" if node else d.start.host
            out.append(
                Anomaly(
                    "non-primary-write",
                    name,
                    d.values.get(name),
                    name,
                    d.end.index if d.end else None,
                    f"increment acknowledged by {served} while it reported non-Primary before "
                    f"(t={before.t1:.3f}) and after (t={after.t0:.3f})",
                )
            )
    return out


def check(ops: Iterable[Op]) -> VerifyReport:
    """Judge a history (see the module docstring)."""
    ops = list(ops)
    done = [Done(s, e) for s, e in pairs(ops)]
    region_names = _regions(ops)
    rows_seen: dict[str, None] = {}
    for d in done:
        if d.start.f in ("incr", "read"):
            for row in d.values:
                rows_seen.setdefault(row)
    rows = [*(r for r in region_names if r in rows_seen), *(r for r in rows_seen if r not in region_names)]
    regions = {name: RegionReport(name) for name in region_names}
    anomalies: list[Anomaly] = []
    errors: Counter[str] = Counter()

    # RTT: per region, the median of the setup's TCP connects to its nodes.
    rtt_samples: dict[str, list[float]] = defaultdict(list)
    for d in done:
        if d.start.f == "rtt" and d.type == "ok" and isinstance(d.end and d.end.value, (int, float)):
            assert d.end is not None
            rtt_samples[d.start.region or "?"].append(float(d.end.value))
    per_region_rtt = {r: round(stats.median(v) or 0.0, 6) for r, v in rtt_samples.items()}
    reference_rtt = max(per_region_rtt.values()) if per_region_rtt else None

    incr = [d for d in done if d.start.f == "incr" and d.start.process in regions]
    reads = [d for d in done if d.start.f == "read" and d.start.process in regions]
    status = [d for d in done if d.start.f == "status" and d.start.process in regions]
    oks = [d for d in incr if d.type == "ok"]

    for d in done:
        if d.end is not None and d.end.type in ("fail", "info"):
            errors[d.end.error or "error"] += 1
            if d.start.process in regions:
                regions[d.start.process].errors[d.end.error or "error"] += 1
    for d in incr:
        regions[d.start.process].writes[d.type] += 1
        if d.end is not None and d.end.error == "certification-conflict":
            regions[d.start.process].conflicts += 1
    for d in reads:
        regions[d.start.process].reads[d.type] += 1
    for d in status:
        value = d.end.value if d.end is not None and d.type == "ok" else None
        regions[d.start.process].statuses[str(value.get("status")) if isinstance(value, dict) else "failed"] += 1
    for name, report in regions.items():
        latencies = [d.end.latency for d in oks if d.start.process == name and d.end and d.end.latency is not None]
        report.commit_latency = stats.summary(latencies)
        report.rtt = per_region_rtt.get(name)
        if reference_rtt and latencies:
            report.commit_latency_rtt = {
                k: round(v / reference_rtt, 1)
                for k in ("p50", "p95", "p99")
                if isinstance(v := report.commit_latency.get(k), (int, float))
            }

    # Lost updates: two acknowledged increments wrote the same value of a row.
    written: dict[tuple[str, int], list[Done]] = defaultdict(list)
    for d in oks:
        for row, value in d.values.items():
            written[(row, value)].append(d)
    for (row, value), ds in sorted(written.items()):
        if len(ds) > 1:
            second = ds[1]
            anomalies.append(
                Anomaly(
                    "lost-update",
                    row,
                    value,
                    second.start.process,
                    second.end.index if second.end else None,
                    f"{len(ds)} acknowledged increments of '{row}' wrote {value} "
                    f"(by {', '.join(x.start.process for x in ds)})",
                )
            )

    # Writes acknowledged by a node that said non-Primary just before and just after them.
    anomalies += _non_primary_writes(oks, status)

    # Final state: reads of the nodes that said Primary at the end.
    final_status: dict[str, str | None] = {}
    final_values: dict[str, dict[str, int] | None] = {}
    for d in done:
        if d.start.process != "final":
            continue
        if d.start.f == "status":
            final_status[d.start.host] = (d.end.value or {}).get("status") if d.type == "ok" and d.end else None
        elif d.start.f == "read":
            final_values[d.start.host] = d.values if d.type == "ok" else None
    hosts = list(dict.fromkeys([*final_status, *final_values]))
    final = {h: {"status": final_status.get(h), "values": final_values.get(h)} for h in hosts}
    finals = [v for h, v in final_values.items() if v is not None and final_status.get(h) == "Primary"]
    final_checked = bool(finals)
    lost = 0
    if final_checked:
        for d in oks:
            for row, value in d.values.items():
                final_seen = [f.get(row) for f in finals]
                missing = sum(1 for x in final_seen if x is None or x < value)
                if missing == len(final_seen):
                    lost += 1
                    anomalies.append(
                        Anomaly(
                            "lost-write",
                            row,
                            value,
                            d.start.process,
                            d.end.index if d.end else None,
                            f"'{row}' = {value} acknowledged by {d.start.host} at "
                            f"t={d.t1:.3f}, final value {max((x or 0) for x in final_seen)}",
                        )
                    )
                elif missing:
                    anomalies.append(
                        Anomaly(
                            "divergent",
                            row,
                            value,
                            d.start.process,
                            d.end.index if d.end else None,
                            f"'{row}' = {value} present on some Primary nodes only: {final_seen}",
                        )
                    )

    # More increments than acknowledged + indeterminate ones, since the initial read.
    initial = next(
        (d.values for d in done if d.start.process == "setup" and d.start.f == "read" and d.type == "ok"), None
    )
    if final_checked and initial:
        for row in rows:
            if row not in initial:
                continue
            top = max(f.get(row, 0) for f in finals)
            touched = [d for d in incr if row in (d.start.value or {}).get("rows", ())]
            maybe = sum(1 for d in touched if d.type in ("ok", "info", "pending"))
            if top - initial[row] > maybe:
                anomalies.append(
                    Anomaly(
                        "unexpected-write",
                        row,
                        top,
                        None,
                        None,
                        f"'{row}' grew by {top - initial[row]} but only {maybe} increments "
                        f"were acknowledged or indeterminate",
                    )
                )

    # Stale reads: a first read missing a write acknowledged before the read began.
    acks: dict[str, list[tuple[float, int]]] = defaultdict(list)  # row -> (ack time, value), by time
    for d in sorted(oks, key=lambda d: d.t1):
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
    for d in reads:
        if d.type != "ok" or (d.start.poll or 0) != 0:
            continue
        report = regions[d.start.process]
        report.checked_reads += 1
        seen = d.values
        behind = 0
        oldest_missed: float | None = None
        for row, times in ack_times.items():
            k = bisect.bisect_left(times, d.t0)  # acks strictly before the read began
            if k == 0:
                continue
            required = running_max[row][k - 1]
            have = seen.get(row, -1)
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

    # Visibility lag per writer -> reader region, on the writer's own counter.
    visibility: dict[str, dict[str, Any]] = {}
    for reader in regions:
        seen_reads = sorted((d for d in reads if d.start.process == reader and d.type == "ok"), key=lambda d: d.t1)
        times = [d.t1 for d in seen_reads]
        for writer in regions:
            best, prefix = -1, []
            for d in seen_reads:
                best = max(best, d.values.get(writer, -1))
                prefix.append(best)
            last_read = seen_reads[-1].t0 if seen_reads else float("-inf")
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
            visibility[f"{writer}->{reader}"] = {
                "n": s["n"],
                "p50": s["p50"],
                "p95": s["p95"],
                "max": s["max"],
                "never": never,
            }

    # Verdict.
    kinds = Counter(a.kind for a in anomalies)
    duration = max((op.time for op in ops), default=0.0)
    conflicts = errors.get("certification-conflict", 0)
    if anomalies:
        state, verdict = State.WARNING, "anomalies"
        summary = "anomalies: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        summary += f" in {len(oks)} acknowledged increments"
    elif not oks or not final_checked:
        state, verdict = State.CRITICAL, "inconclusive"
        why = "no increment was acknowledged" if not oks else "no Primary node could be read at the end"
        summary = f"inconclusive: {why}"
    else:
        state, verdict = State.OK, "valid"
        summary = f"valid: 0 lost of {len(oks)} acknowledged increments"
    extras = []
    if conflicts:
        extras.append(f"{conflicts} certification conflicts")
    stale = {r: rep.stale_reads for r, rep in regions.items() if rep.stale_reads}
    if stale:
        extras.append("stale reads " + ", ".join(f"{r} {n}" for r, n in stale.items()))
    failed = {r: n for r, rep in regions.items() if (n := rep.writes["fail"] + rep.writes["info"] - rep.conflicts)}
    if failed:
        extras.append("failed writes (not counting conflicts) " + ", ".join(f"{r} {n}" for r, n in failed.items()))
    if extras:
        summary += "; " + "; ".join(extras)
    return VerifyReport(
        state=state,
        verdict=verdict,
        summary=summary,
        duration=duration,
        operations=sum(1 for op in ops if op.type != "invoke"),
        rows=rows,
        regions=regions,
        visibility=visibility,
        errors=dict(sorted(errors.items())),
        anomalies=anomalies,
        acknowledged=len(oks),
        lost=lost,
        rtt={"per_region": per_region_rtt, "reference": reference_rtt},
        initial=initial,
        final=final,
        final_checked=final_checked,
    )
