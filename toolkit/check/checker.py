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

The judgement is composed as Jepsen's `checker/compose` is: each property above is one
checker in `properties` (verdicts merged worst-first), each measurement one function in
`measures`, and both read the history through `facts.Facts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from toolkit.check import measures
from toolkit.check.facts import Facts
from toolkit.check.history import Op
from toolkit.check.measures import RegionReport
from toolkit.check.properties import Anomaly, Verdict, judge
from toolkit.check.state import State

__all__ = ["SCHEMA", "Anomaly", "RegionReport", "VerifyReport", "check"]

SCHEMA = "kgt.check.verify/1"


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


STATES = {"valid": State.OK, "anomalies": State.WARNING, "inconclusive": State.CRITICAL}


def check(ops: Iterable[Op]) -> VerifyReport:
    """Judge a history (see the module docstring): every property checker, then every measurement."""
    facts = Facts.of(ops)
    judged = judge(facts)
    regions = {name: RegionReport(name) for name in facts.regions}
    rtt = measures.rtt(facts)
    errors = measures.errors(facts, regions)
    measures.counts(facts, regions)
    measures.commit_latency(facts, regions, rtt)
    measures.stale_reads(facts, regions)
    visibility = measures.visibility(facts)
    return VerifyReport(
        state=STATES[judged.verdict],
        verdict=judged.verdict,
        summary=summary(judged, len(facts.oks), regions, errors),
        duration=max((op.time for op in facts.ops), default=0.0),
        operations=sum(1 for op in facts.ops if op.type != "invoke"),
        rows=list(facts.rows),
        regions=regions,
        visibility=visibility,
        errors=errors,
        anomalies=list(judged.anomalies),
        acknowledged=len(facts.oks),
        lost=sum(1 for a in judged.anomalies if a.kind == "lost-write"),
        rtt=rtt.to_json(),
        initial=facts.initial,
        final=facts.final.nodes,
        final_checked=facts.final.checked,
    )


def summary(judged: Verdict, acknowledged: int, regions: dict[str, RegionReport], errors: dict[str, int]) -> str:
    """The verdict in one sentence, then what was measured that an operator should know."""
    if judged.verdict == "anomalies":
        kinds = Counter(a.kind for a in judged.anomalies)
        text = "anomalies: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        text += f" in {acknowledged} acknowledged increments"
    elif judged.verdict == "inconclusive":
        text = f"inconclusive: {judged.why}"
    else:
        text = f"valid: 0 lost of {acknowledged} acknowledged increments"
    extras = []
    if conflicts := errors.get(measures.CONFLICT, 0):
        extras.append(f"{conflicts} certification conflicts")
    stale = {r: rep.stale_reads for r, rep in regions.items() if rep.stale_reads}
    if stale:
        extras.append("stale reads " + ", ".join(f"{r} {n}" for r, n in stale.items()))
    failed = {r: n for r, rep in regions.items() if (n := rep.failed_writes)}
    if failed:
        extras.append("failed writes (not counting conflicts) " + ", ".join(f"{r} {n}" for r, n in failed.items()))
    return text + "; " + "; ".join(extras) if extras else text
