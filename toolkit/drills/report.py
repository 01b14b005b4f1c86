"""report.json (a stable, documented schema) and report.html (self-contained) of a checked drill.

report.json, schema "kgt.drill.report/1" (times in seconds; `t` values are seconds since
the history started, other durations are relative to the event they follow):

    {"schema": "kgt.drill.report/1",
     "drill": "region-partition|region-loss|keystone-loss|proxy-loss|node-loss|wan-degrade",
     "verdict": "pass|fail|unknown", "code": 0|1|2, "summary": str, "line": "PASS: …",
     "fault": {"kind", "region", "host", "rtt", "between", "kill"},
     "topology": {"name", "path", "regions": [str], "galera_nodes": {host: region},
                  "expected_size": n, "keystone_endpoints": {region: "addr:port"},
                  "flagged": bool, "flags": [str], "fixes": [str]},
     "timeline": {"start_wall": iso8601, "workload_start": t, "fault_at": t, "fault_wall": iso8601,
                  "fault_injected": t,
                  "heal_at": t, "healed": t, "healthy": t|null, "end": t, "interrupted": t|null},
     "prediction": {"scenario": str|null, "kind", "survives": bool, "components": [{"regions",
                    "hosts", "weight", "primary"}], "regions": {R: {"database", "keystone"}},
                    "nodes": {host: "Primary|non-Primary|down"}, "fixes": [str], "flags": [str]},
     "observed": {"nodes": {host: "Primary|non-Primary|down|unknown"}},   # at the end of the fault window
     "bounds": {"haproxy_detection", "galera_detection", "vrrp_failover", "slack",
                "write_gap": {R: s}, "token_gap": {R: s}, "vip_move": s|null, "healthy": s,
                "rtt": s},                # the lab's WAN round trip the drill ran at (kept through it)
     "measurements": {
        "detect": {"galera": s|null, "haproxy": s|null, "vip": s|null, "client": s|null},  # after fault_at
        # vip (and vip_move.seconds): from fault_injected (the stop command returned) to the
        # first completed `ip addr` sample showing the VIP on another proxy
        "vip_move": {"vips": [addr], "from": host, "to": host, "seconds": s}|null,
        "heal": {"duration": s, "resync": s|null, "healthy": s|null,      # resync/healthy: after heal_at
                 "rejoin": {host: {"position": "uuid:seqno"|null, "method": "IST|SST|none|unknown", "seconds": s}}},
        "regions": {R: {"writes"|"tokens"|"validations"|"dirty_reads": {   # tokens: issued; validations: validated
             "ok", "fail", "info", "pending": n, "availability": 0-1|null,  # ops invoked in the fault window
             "max_gap_fault": s|null,   # longest gap overlapping the fault window
             "max_gap": s|null,         # longest gap overlapping fault window → end (failover gap)
             "gaps": [{"start": t, "end": t|null, "seconds": s, "failures": n}],
             "first_ok_after_heal": s|null,
             "conflicts": n},           # writes only: lost certification races in the window (not in availability)
             "read_only": {             # regions predicted keystone read-only: service once read-only
                 "since": s, "until": s, "non_primary_at": s|null,   # after fault_injected
                 "tokens"|"validations": {"ok": n, "attempts": n, "availability": 0-1|null}}}},
        "acknowledged_writes": n, "lost_writes": n,
        "anomalies": [{"kind", "row", "value", "region", "index", "detail"}]},
     "expectations": [{"name", "region": R|null, "expected": str, "observed": str, "ok": true|false|null}],
     "verify": {…the "kgt.check.verify/1" report of the Galera workload…},
     "files": {"history": "history.jsonl", "html": "report.html"}}

A gap runs from the last successful operation before it to the first after it, and
counts when something failed in between or it lasted ≥ 1 s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.drills.checker import DrillResult

SCHEMA = "kgt.drill.report/1"


def to_json(result: DrillResult) -> dict[str, Any]:
    """The report.json document."""
    plan = result.plan
    prediction = plan["prediction"]
    return {
        "schema": SCHEMA,
        "drill": plan["drill"],
        "verdict": result.verdict,
        "code": result.code,
        "summary": result.summary,
        "line": result.line(),
        "fault": plan["fault"],
        "topology": {
            **plan["topology"],
            "flagged": bool(prediction.get("flags")),
            "flags": prediction.get("flags", []),
            "fixes": prediction.get("fixes", []),
        },
        "timeline": result.timeline,
        "prediction": prediction,
        "observed": {"nodes": result.observed_nodes},
        "bounds": plan["bounds"],
        "measurements": result.measurements,
        "expectations": [e.to_json() for e in result.expectations],
        "verify": result.verify,
        "files": {"history": "history.jsonl", "html": "report.html"},
    }


def write(directory: Path, result: DrillResult) -> None:
    """Write report.json and report.html into `directory`."""
    from toolkit.drills import html

    directory.mkdir(parents=True, exist_ok=True)
    data = to_json(result)
    (directory / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (directory / "report.html").write_text(html.render(data, result), encoding="utf-8")


def text(result: DrillResult) -> str:
    """A short report for people: expectations as a table, then the verdict line."""
    rows = [("", "expectation", "region", "expected", "observed")]
    for e in result.expectations:
        mark = {True: "ok", False: "FAIL", None: "?"}[e.ok]
        rows.append((mark, e.name, e.region or "-", e.expected, e.observed))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    m = result.measurements
    d = m["detect"]
    lines.append("detect: " + ", ".join(f"{k} {v:.1f}s" for k, v in d.items() if v is not None))
    if m.get("vip_move"):
        lines.append(f"VIP move: {m['vip_move']['seconds']:.2f}s to {m['vip_move']['to']}")
    heal = m["heal"]
    parts = [f"{k} {v:.1f}s" for k, v in heal.items() if isinstance(v, (int, float))]
    rejoin = ", ".join(f"{n} by {i.get('method')}" for n, i in heal["rejoin"].items())
    lines.append("heal: " + ", ".join(parts) + (f"; rejoin {rejoin}" if rejoin else ""))
    lines.append(result.line())
    return "\n".join(lines)
