"""Tables for people: the quorum verdict and the verify report as short aligned text."""

from __future__ import annotations

from collections.abc import Sequence

from toolkit.check.checker import VerifyReport
from toolkit.check.quorum import QuorumVerdict


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def ms(seconds: float | int | None) -> str:
    """Seconds as milliseconds with sensible precision; `-` for None."""
    if seconds is None:
        return "-"
    value = seconds * 1000
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def pct(fraction: float | None) -> str:
    """A fraction as a percentage; `-` for None."""
    return "-" if fraction is None else f"{fraction:.1%}"


def quorum_text(verdict: QuorumVerdict) -> str:
    """The verdict as a node table, then the reasons, then the one-line verdict."""
    rows = [
        [
            "region",
            "state",
            "node",
            "cluster",
            "size",
            "conf",
            "local",
            "seg",
            "fc-paused",
            "recv-q",
            "repl-lat-ms",
            "error",
        ]
    ]
    by_region = {r.name: r for r in verdict.regions}
    for n in verdict.nodes:
        r = n.result
        region = by_region.get(r.region)
        rows.append(
            [
                r.region,
                region.state if region else "?",
                r.host,
                r.cluster_status or "-",
                "-" if r.cluster_size is None else str(r.cluster_size),
                "-" if r.conf_id is None else str(r.conf_id),
                r.local_state or "-",
                "-" if r.segment is None else str(r.segment),
                "-" if r.flow_control_paused is None else f"{r.flow_control_paused:.2f}",
                "-" if r.recv_queue is None else str(r.recv_queue),
                ms(r.repl_latency),
                f"{r.error_class}: {r.error}" if r.error_class else "",
            ]
        )
    lines = table(rows)
    lines += [f"- {reason}" for reason in verdict.reasons[1:]] if len(verdict.reasons) > 1 else []
    lines.append(verdict.line())
    return "\n".join(lines)


def verify_text(report: VerifyReport) -> str:
    """Per-region writes, latency and reads; visibility lag; errors; final state; the verdict line."""
    lines = [
        f"{report.duration:.1f}s, {report.operations} operations, RTT reference {ms(report.rtt.get('reference'))} ms"
    ]
    rows = [
        [
            "region",
            "writes ok/fail/info",
            "avail",
            "commit p50/p95/p99 ms",
            "p50 xRTT",
            "reads",
            "stale",
            "max-stale",
            "behind",
            "rtt-ms",
        ]
    ]
    for name, r in report.regions.items():
        lat = r.commit_latency
        rows.append(
            [
                name,
                f"{r.writes['ok']}/{r.writes['fail']}/{r.writes['info'] + r.writes['pending']}",
                pct(r.write_availability),
                "/".join(ms(lat.get(k)) for k in ("p50", "p95", "p99")),
                "-" if not r.commit_latency_rtt else f"{r.commit_latency_rtt.get('p50', 0):g}",
                str(r.checked_reads),
                str(r.stale_reads),
                "-" if r.max_staleness is None else f"{r.max_staleness:.2f}s",
                str(r.max_behind),
                ms(r.rtt),
            ]
        )
    lines += table(rows)
    if report.visibility:
        vis = [["visibility writer->reader", "n", "p50 ms", "p95 ms", "max ms", "never"]]
        for pair, v in report.visibility.items():
            vis.append([pair, str(v["n"]), ms(v["p50"]), ms(v["p95"]), ms(v["max"]), str(v["never"])])
        lines += table(vis)
    statuses = {name: r.statuses for name, r in report.regions.items() if set(r.statuses) - {"Primary"}}
    if statuses:
        lines.append(
            "cluster status seen: "
            + "; ".join(
                f"{name} " + ", ".join(f"{k} {n}" for k, n in sorted(c.items())) for name, c in statuses.items()
            )
        )
    if report.errors:
        lines.append("errors: " + ", ".join(f"{k} {n}" for k, n in report.errors.items()))
    if report.final:
        parts = []
        for host, f in report.final.items():
            values = f["values"]
            shown = " ".join(f"{k}={v}" for k, v in values.items()) if values else "unread"
            parts.append(f"{host} {f['status'] or 'unreachable'} {shown}")
        lines.append("final: " + "; ".join(parts))
    for a in report.anomalies[:20]:
        lines.append(f"anomaly {a.kind}: {a.detail}")
    if len(report.anomalies) > 20:
        lines.append(f"… and {len(report.anomalies) - 20} more anomalies (see --format json)")
    lines.append(report.line())
    return "\n".join(lines)
