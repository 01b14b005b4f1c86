"""The checker's output, `DrillResult` (the body of report.json), and its one-line summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.drills.faults import Fault, Prediction
from toolkit.drills.verdicts import VERDICT_CODES, Expectation
from toolkit.drills.verdicts import fmt_seconds as _fmt
from toolkit.drills.verdicts import fmt_share as _pct


@dataclass
class DrillResult:
    """The checker's output; `to_json` is the body of report.json."""

    verdict: str
    summary: str
    plan: dict[str, Any]
    timeline: dict[str, Any]
    observed_nodes: dict[str, str]
    measurements: dict[str, Any]
    expectations: list[Expectation]
    verify: dict[str, Any]
    streams: dict[str, dict[str, list[tuple[float, str]]]] = field(default_factory=dict)
    galera_samples: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    @property
    def code(self) -> int:
        """Exit code: 0 pass, 1 fail, 2 unknown."""
        return VERDICT_CODES[self.verdict]

    def line(self) -> str:
        """The one-line verdict."""
        return f"{self.verdict.upper()}: {self.summary}"


def _prediction_part(result: DrillResult, prediction: Prediction) -> str | None:
    """Whether the prediction held, for people."""
    held = next((e for e in result.expectations if e.name == "prediction held"), None)
    if held is not None and held.ok:
        if not prediction.survives:
            return "NO PRIMARY on any side, as predicted — topology flagged" + (
                f" (fix: {prediction.fixes[0]})" if prediction.fixes else ""
            )
        primary = [n for n, s in result.observed_nodes.items() if s == "Primary"]
        return f"prediction held (Primary: {', '.join(primary) or 'none'})"
    if held is not None and held.ok is False and result.timeline.get("interrupted") is None:
        return f"prediction FAILED (expected {held.expected}; saw {held.observed})"
    return None


def _gaps_part(regions: dict[str, Any]) -> list[str]:
    """The longest write and token gap per region, and how each read-only region served."""
    gaps = []
    for r, data in regions.items():
        w = (data.get("writes") or {}).get("max_gap")
        t = max(
            (x for x in ((data.get(k) or {}).get("max_gap") for k in ("tokens", "validations")) if x is not None),
            default=None,
        )
        gaps.append(f"{r} {_fmt(w)}/{_fmt(t)}")
    parts = ["longest gap writes/tokens " + " ".join(gaps)]
    for r, data in regions.items():
        served = data.get("read_only")
        if served:
            issued, validated = served["tokens"], served["validations"]
            parts.append(
                f"{r} read-only from {served['since']:.1f}s after the cut: tokens issued "
                f"{_pct(issued['availability'])}, validated {_pct(validated['availability'])}"
            )
    return parts


def summarize(result: DrillResult) -> str:
    """One line: the fault, whether the prediction held, lost writes, the gaps, the heal."""
    plan = result.plan
    fault = Fault.from_json(plan["fault"])
    m = result.measurements
    parts = [fault.describe()]
    if result.timeline.get("interrupted") is not None:
        parts.append(f"interrupted at t={result.timeline['interrupted']:.1f}s, fault healed")
    held = _prediction_part(result, Prediction.from_json(plan["prediction"]))
    if held is not None:
        parts.append(held)
    parts.append(f"{m['lost_writes']} lost of {m['acknowledged_writes']} acknowledged writes")
    parts += _gaps_part(m["regions"])
    parts.append(f"healthy {_fmt(m['heal']['healthy'])} after heal")
    failed = [e for e in result.expectations if e.ok is False]
    if failed:
        parts.append(
            "failed: " + "; ".join(f"{e.name}{' ' + e.region if e.region else ''} ({e.observed})" for e in failed[:4])
        )
    return "; ".join(parts)
