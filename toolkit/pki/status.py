"""`kgt pki status`: every certificate with its names, expiry and days left, for people or programs.

A row is good when `verify` finds nothing wrong and it has more than `--warn-days` left.
JSON (`--format json`), stable:
{"warn_days": N, "ok": bool, "certificates": [{"host": H | "CA", "file": str,
"subject": str, "names_ok": bool | null, "not_after": ISO 8601 | null,
"days_left": int | null, "state": "ok" | "expiring" | "invalid", "problems": [str]}]}.
"""

from __future__ import annotations

import datetime as dt
import json

from toolkit.pki import authority, verify
from toolkit.pki.store import with_tls
from toolkit.topology.model import Topology


def state(report: verify.Report, at: dt.datetime, warn_days: int) -> str:
    """`invalid` (a problem), `expiring` (within `warn_days`), else `ok`."""
    if not report.ok:
        return "invalid"
    left = report.days_left(at)
    return "expiring" if left is not None and left < warn_days else "ok"


def rows(topology: Topology, warn_days: int, at: dt.datetime | None = None) -> list[dict[str, object]]:
    """One row per CA of the bundle, then per host, in file order (the JSON form's `certificates`)."""
    at = at or authority.now()
    cas, hosts = verify.reports(with_tls(topology), at)
    out: list[dict[str, object]] = []
    for report in (*cas, *hosts):
        out.append(
            {
                "host": report.host,
                "file": str(report.file),
                "subject": report.subject,
                "names_ok": report.names_ok,
                "not_after": report.not_after.isoformat() if report.not_after else None,
                "days_left": report.days_left(at),
                "state": state(report, at, warn_days),
                "problems": [what for _, what in report.problems],
            }
        )
    return out


def table(found: list[dict[str, object]], warn_days: int) -> str:
    """The rows for people: host, names, not-after, days left, state (and what is wrong)."""
    header = ("host", "names", "not after", "days", "state")
    lines = [header]
    for row in found:
        names = {True: "ok", False: "WRONG", None: "-"}[row["names_ok"]]  # type: ignore[index]
        not_after = str(row["not_after"] or "-")[:10]
        days = "-" if row["days_left"] is None else str(row["days_left"])
        lines.append((str(row["host"]), names, not_after, days, str(row["state"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    for row in found:
        for what in row["problems"]:  # type: ignore[attr-defined]
            text.append(f"{row['file']}: {row['host']}: {what}")
    bad = [r for r in found if r["state"] != "ok"]
    text.append(
        f"{len(bad)} of {len(found)} certificates need attention (invalid, or under {warn_days} days left)"
        if bad
        else f"all {len(found)} certificates valid for more than {warn_days} days"
    )
    return "\n".join(text)


def report(topology: Topology, warn_days: int, fmt: str, at: dt.datetime | None = None) -> tuple[str, bool]:
    """The output in `fmt` and whether every certificate is good."""
    found = rows(topology, warn_days, at)
    good = all(r["state"] == "ok" for r in found)
    if fmt == "json":
        return json.dumps({"warn_days": warn_days, "ok": good, "certificates": found}, indent=2), good
    return table(found, warn_days), good
