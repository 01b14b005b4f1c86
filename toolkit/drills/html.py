"""report.html: one self-contained page (inline CSS and SVG, no scripts, no external assets).

The timeline has a row per region and stream (writes, tokens, validations, dirty reads) and one per
Galera node: each row is split into bins of `BIN` seconds, coloured by what completed in
the bin (green all ok, red all failed, amber mixed or unknown, empty nothing). The fault
window is shaded, the heal and healthy moments are marked, and each stream's longest gap
is drawn as a bracket with its length.
"""

from __future__ import annotations

import html
import math
from typing import Any

from toolkit.drills.checker import DrillResult

BIN = 0.5
WIDTH = 1200
LEFT = 170
ROW = 22
OK, FAIL, MIXED, PRIMARY, NONPRIMARY, DOWN = "#2e9e44", "#d43c3c", "#e8a33a", "#2e9e44", "#e8a33a", "#d43c3c"
STREAMS = (("writes", "writes"), ("tokens", "tokens"), ("validations", "validations"), ("dirty_reads", "dirty reads"))


def _e(text: Any) -> str:
    return html.escape(str(text))


def _bins(events: list[tuple[float, str]], end: float) -> list[str | None]:
    n = max(1, math.ceil(end / BIN))
    seen: list[set[str]] = [set() for _ in range(n)]
    for t, kind in events:
        seen[min(n - 1, max(0, int(t / BIN)))].add(kind)
    out: list[str | None] = []
    for kinds in seen:
        if not kinds:
            out.append(None)
        elif kinds == {"ok"}:
            out.append(OK)
        elif kinds <= {"fail"}:
            out.append(FAIL)
        else:
            out.append(MIXED)
    return out


def _node_bins(events: list[tuple[float, str]], end: float) -> list[str | None]:
    n = max(1, math.ceil(end / BIN))
    out: list[str | None] = [None] * n
    colour = {"Primary": PRIMARY, "non-Primary": NONPRIMARY, "down": DOWN}
    for t, state in events:  # the last sample of a bin wins
        out[min(n - 1, max(0, int(t / BIN)))] = colour.get(state)
    return out


def timeline_svg(report: dict[str, Any], result: DrillResult) -> str:
    """The timeline picture."""
    t = report["timeline"]
    end = max(float(t.get("end") or 1.0), 1.0)
    scale = (WIDTH - LEFT - 20) / end

    def x(sec: float) -> float:
        return round(LEFT + sec * scale, 1)

    rows: list[tuple[str, list[str | None], dict[str, Any] | None]] = []
    for region, streams in result.streams.items():
        for key, label in STREAMS:
            events = streams.get(key) or []
            if events:
                data = report["measurements"]["regions"].get(region, {}).get(key)
                rows.append((f"{region} {label}", _bins(events, end), data))
    for node, events in sorted(result.galera_samples.items()):
        rows.append((f"{node} galera", _node_bins(events, end), None))
    top = 30
    height = top + ROW * len(rows) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    if t.get("fault_at") is not None:
        f0 = float(t["fault_at"])
        f1 = float(t["heal_at"]) if t.get("heal_at") is not None else end
        parts.append(
            f'<rect class="fault-window" x="{x(f0)}" y="{top - 8}" width="{max(1.0, x(f1) - x(f0))}" '
            f'height="{ROW * len(rows) + 8}" fill="#f4c7c7" fill-opacity="0.55"/>'
        )
        parts.append(f'<text x="{x(f0) + 3}" y="{top - 12}" fill="#a02020">fault {_e(report["fault"]["kind"])}</text>')
    for key, label, colour in (
        ("heal_at", "heal", "#7a3fbf"),
        ("healed", "healed", "#1f5fbf"),
        ("healthy", "healthy", "#2e9e44"),
    ):
        if t.get(key) is not None:
            xx = x(float(t[key]))
            parts.append(
                f'<line x1="{xx}" y1="{top - 8}" x2="{xx}" y2="{top + ROW * len(rows)}" stroke="{colour}" '
                f'stroke-dasharray="4 3"/><text x="{xx + 3}" y="{top + ROW * len(rows) + 14}" '
                f'fill="{colour}">{label}</text>'
            )
    width = max(1.0, BIN * scale)
    for i, (label, bins, data) in enumerate(rows):
        y = top + i * ROW
        parts.append(f'<text x="6" y="{y + 15}">{_e(label)}</text>')
        parts.append(f'<rect x="{LEFT}" y="{y + 2}" width="{WIDTH - LEFT - 20}" height="{ROW - 6}" fill="#f2f2f2"/>')
        for j, fill in enumerate(bins):
            if fill:
                parts.append(
                    f'<rect class="bin" x="{round(LEFT + j * width, 1)}" y="{y + 2}" '
                    f'width="{round(width + 0.3, 1)}" height="{ROW - 6}" fill="{fill}"/>'
                )
        gap = _longest_gap(data, t)
        if gap is not None:
            g0, g1, seconds = gap
            parts.append(
                f'<path class="gap" d="M{x(g0)},{y + 1} v-3 H{x(g1)} v3" stroke="#111" fill="none"/>'
                f'<text x="{x(g1) + 3}" y="{y + 9}" font-size="10">gap {seconds:.1f}s</text>'
            )
    axis_y = top + ROW * len(rows) + 2
    step = 5 if end <= 80 else 10
    for s in range(0, int(end) + 1, step):
        parts.append(
            f'<line x1="{x(s)}" y1="{axis_y}" x2="{x(s)}" y2="{axis_y + 4}" stroke="#555"/>'
            f'<text x="{x(s) - 6}" y="{axis_y + 28}" font-size="10" fill="#555">{s}s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _longest_gap(data: dict[str, Any] | None, t: dict[str, Any]) -> tuple[float, float, float] | None:
    if not data or t.get("fault_at") is None:
        return None
    f0 = float(t["fault_at"])
    candidates = [g for g in data.get("gaps", []) if (g["end"] is None or g["end"] > f0)]
    if not candidates:
        return None
    g = max(candidates, key=lambda g: g["seconds"])
    if g["seconds"] < 1.0:
        return None
    end = g["end"] if g["end"] is not None else float(t["end"])
    return float(g["start"]), float(end), float(g["seconds"])


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _s(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}s" if isinstance(v, (int, float)) else _e(v)


def _expectation_rows(report: dict[str, Any]) -> list[list[str]]:
    return [
        [
            {True: "✔", False: "✘", None: "?"}[e["ok"]],
            _e(e["name"]),
            _e(e["region"] or "-"),
            _e(e["expected"]),
            _e(e["observed"]),
        ]
        for e in report["expectations"]
    ]


REGION_HEADER = [
    "region",
    "stream",
    "ok/fail/info in fault",
    "availability in fault",
    "longest gap in fault",
    "failover gap",
    "first ok after heal",
]


def _region_rows(m: dict[str, Any]) -> list[list[str]]:
    rows = []
    for region, data in m["regions"].items():
        for key, label in STREAMS:
            d = data.get(key)
            if d:
                avail = "-" if d["availability"] is None else f"{d['availability']:.1%}"
                rows.append(
                    [
                        _e(region),
                        label,
                        f"{d['ok']}/{d['fail']}/{d['info']}",
                        avail,
                        _s(d["max_gap_fault"]),
                        _s(d["max_gap"]),
                        _s(d["first_ok_after_heal"]),
                    ]
                )
    return rows


def _facts(m: dict[str, Any]) -> list[list[str]]:
    heal = m["heal"]
    facts = [
        [
            "detect (galera / haproxy / vip / client)",
            " / ".join(_s(m["detect"].get(k)) for k in ("galera", "haproxy", "vip", "client")),
        ],
        ["heal took", _s(heal["duration"])],
        ["resync after heal", _s(heal["resync"])],
        ["healthy after heal", _s(heal["healthy"])],
        ["acknowledged / lost writes", f"{m['acknowledged_writes']} / {m['lost_writes']}"],
    ]
    if m.get("vip_move"):
        facts.append(
            ["VIP move", f"{m['vip_move']['seconds']:.2f}s {_e(m['vip_move']['from'])} → {_e(m['vip_move']['to'])}"]
        )
    for node, info in heal["rejoin"].items():
        facts.append([f"rejoin {_e(node)}", f"{_e(info.get('method'))} at {_e(info.get('position'))}"])
    return [[_e(a), b] for a, b in facts]


def render(report: dict[str, Any], result: DrillResult) -> str:
    """The whole page."""
    verdict = report["verdict"]
    colour = {"pass": OK, "fail": FAIL, "unknown": MIXED}[verdict]
    m = report["measurements"]
    pred = report["prediction"]
    pred_rows = [[_e(n), _e(s), _e(report["observed"]["nodes"].get(n, "?"))] for n, s in pred["nodes"].items()]
    flags = "".join(f'<p class="flag">⚠ {_e(f)}</p>' for f in report["topology"]["flags"])
    flags += "".join(f'<p class="flag">fix: {_e(f)}</p>' for f in report["topology"]["fixes"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kgt drill {_e(report["drill"])}: {_e(verdict)}</title>
<style>
body {{ font-family: sans-serif; margin: 20px; color: #222; background: #fff; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 24px; }}
.verdict {{ display: inline-block; padding: 4px 10px; color: #fff; background: {colour}; font-weight: bold; }}
.flag {{ color: #a02020; font-weight: bold; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}
</style></head><body>
<h1>kgt drill {_e(report["drill"])} on {_e(report["topology"]["name"])}
<span class="verdict">{_e(verdict.upper())}</span></h1>
<p>{_e(report["summary"])}</p>
{flags}
<h2>Timeline</h2>
<p class="legend"><span style="background:{OK}"></span>ok / Primary
<span style="background:{FAIL}"></span>failed / down
<span style="background:{MIXED}"></span>mixed, unknown / non-Primary
<span style="background:#f4c7c7"></span>fault window</p>
{timeline_svg(report, result)}
<h2>Expectations</h2>
{_table(["", "expectation", "region", "expected", "observed"], _expectation_rows(report))}
<h2>Prediction ({_e(pred["scenario"] or "no Galera failure")}) and observation</h2>
{_table(["node", "predicted", "observed"], pred_rows)}
<h2>Per region</h2>
{_table(REGION_HEADER, _region_rows(m))}
<h2>Measurements</h2>
{_table(["", ""], _facts(m))}
</body></html>
"""
