"""The drill checker: reads only the history and returns pass / fail / unknown with what it measured.

The history's first operation is the drill's plan (process "drill", f "plan": the fault,
`kgt analyze`'s prediction, the bounds from the configuration, the topology facts the
checker needs), then the nemesis's `inject` and `heal`, the monitors' samples, the
workloads' operations and the verify loop's final reads (see `workloads`, `monitor`,
`nemesis`). From those alone it measures (`Facts`)

- detection: fault → first Galera view change, first HAProxy server down, VIP moved, first client error;
- failover gaps: per region and stream (writes, tokens issued, tokens validated, dirty
  reads) the longest stretch between two successful operations with failures in between
  (or ≥ `MIN_GAP` without): a run of failures is one gap; a write that lost a
  certification race counts as an answer (the region is up);
- read-only service: in a region the analysis predicts Keystone read-only (cut off from
  the Primary component), the share of tokens issued and validated there from when it
  should be serving read-only (`read_only_service`) until the heal;
- availability per region during the fault (ok over attempts invoked in the window);
- heal: how long the heal took, when every node was Primary/Synced/whole again, when the
  site was healthy again, and how a restarted node rejoined (IST or SST);
- lost writes and the other anomalies of `toolkit.check.checker` (run on the Galera ops);

and runs the checks of `checks` (one property each, the fault kind's own among them).
Verdict, merged worst-first: fail if any expectation fails, else unknown if any could not
be decided (or the drill was interrupted, or never injected), else pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolkit.check.history import Op
from toolkit.drills.checker import checks
from toolkit.drills.checker.checks import CORRECTNESS, READ_ONLY_AVAILABILITY
from toolkit.drills.checker.facts import Facts
from toolkit.drills.checker.history import DrillHistory
from toolkit.drills.checker.measure import timeline
from toolkit.drills.checker.result import DrillResult, summarize
from toolkit.drills.checker.streams import MIN_GAP, Gap, availability, gaps, longest, read_only_service
from toolkit.drills.verdicts import VERDICT_CODES, Expectation, merge


def check(ops: Iterable[Op]) -> DrillResult:
    """Judge a drill's history (see the module docstring)."""
    h = DrillHistory(list(ops))
    facts = Facts.of(h)
    exps = checks.expectations(facts)
    if h.interrupted is not None:
        exps = checks.interrupted(exps)
    verdict = merge(exps, floor="unknown" if h.interrupted is not None or h.inject is None else "pass")
    result = DrillResult(
        verdict,
        "",
        h.plan,
        timeline(h),
        facts.nodes.observed,
        facts.measurements(),
        exps,
        facts.verify.to_json(),
        facts.timelines,
        facts.nodes.samples,
    )
    result.summary = summarize(result)
    return result


__all__ = [
    "CORRECTNESS",
    "MIN_GAP",
    "READ_ONLY_AVAILABILITY",
    "VERDICT_CODES",
    "DrillResult",
    "Expectation",
    "Facts",
    "Gap",
    "availability",
    "check",
    "gaps",
    "longest",
    "read_only_service",
    "summarize",
]
