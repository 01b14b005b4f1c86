"""The verify checker on hand-made histories, the history format, and percentiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolkit.check import history as hist
from toolkit.check.checker import SCHEMA, check
from toolkit.check.history import History, Op
from toolkit.check.state import State
from toolkit.check.stats import percentile, summary


class Builder:
    """Operations with explicit times; `ops()` sorts them into a history."""

    def __init__(self) -> None:
        self._ops: list[tuple[float, int, dict[str, Any]]] = []
        self._n = 0

    def _add(
        self,
        process: str,
        f: str,
        t0: float,
        t1: float | None,
        type_: str,
        value: Any = None,
        invoke_value: Any = None,
        host: str | None = None,
        error: str | None = None,
        poll: int | None = None,
    ) -> None:
        region = process if process not in ("setup", "final") else (host or "r1")[:2]
        common = {
            "process": process,
            "region": region,
            "host": host or f"{region}-db1",
            "address": "x:3306",
            "f": f,
            "wall": "",
            "poll": poll,
        }
        self._n += 1
        self._ops.append((t0, self._n, {**common, "type": "invoke", "value": invoke_value, "time": t0}))
        if t1 is not None:
            self._n += 1
            self._ops.append(
                (t1, self._n, {**common, "type": type_, "value": value, "time": t1, "latency": t1 - t0, "error": error})
            )

    def incr(
        self,
        region: str,
        t0: float,
        t1: float,
        values: dict[str, int] | None = None,
        type_: str = "ok",
        error: str | None = None,
    ) -> None:
        rows = sorted([region, "shared"])
        self._add(region, "incr", t0, t1, type_, values if type_ == "ok" else None, {"rows": rows}, error=error)

    def read(self, region: str, t0: float, t1: float, values: dict[str, int], poll: int = 0) -> None:
        self._add(region, "read", t0, t1, "ok", values, poll=poll)

    def status(self, region: str, t0: float, t1: float, status: str = "Primary", node: str | None = None) -> None:
        value = {"status": status, "size": 3, "state": "Synced", "conf_id": 1}
        self._add(region, "status", t0, t1, "ok", {**value, "node": node} if node else value)

    def initial(self, values: dict[str, int]) -> None:
        self._add("setup", "read", -0.2, -0.1, "ok", values, host="r1-db1", poll=0)

    def rtt(self, region: str, seconds: float) -> None:
        t0 = -1.0 + 0.1 * self._n  # the setup process runs one operation at a time
        self._add("setup", "rtt", t0, t0 + seconds, "ok", seconds, host=f"{region}-db1")

    def final(
        self, host: str, values: dict[str, int] | None, status: str = "Primary", conf_id: int | None = None
    ) -> None:
        t = 100.0 + self._n  # the final process reads one node after the other
        read: dict[str, object] = {"status": status, "size": 3, "state": "Synced"}
        if conf_id is not None:
            read["conf_id"] = conf_id
        self._add("final", "status", t, t + 0.001, "ok", read, host=host)
        if values is not None:
            self._add("final", "read", t + 0.002, t + 0.003, "ok", values, host=host, poll=0)

    def ops(self) -> list[Op]:
        ordered = [d for _, _, d in sorted(self._ops, key=lambda x: (x[0], x[1]))]
        return [Op.from_json({"index": i, **d}) for i, d in enumerate(ordered)]


def clean() -> Builder:
    """Two regions incrementing in turn, reading each other's writes, all final nodes agreeing."""
    b = Builder()
    b.rtt("r1", 0.010)
    b.rtt("r2", 0.020)
    b.initial({"r1": 0, "r2": 0, "shared": 0})
    b.status("r1", 0.0, 0.001)
    b.incr("r1", 0.01, 0.05, {"r1": 1, "shared": 1})
    b.read("r1", 0.06, 0.061, {"r1": 1, "r2": 0, "shared": 1})
    b.status("r2", 0.07, 0.071)
    b.incr("r2", 0.10, 0.16, {"r2": 1, "shared": 2})
    b.read("r2", 0.17, 0.172, {"r1": 1, "r2": 1, "shared": 2})
    b.read("r1", 0.20, 0.201, {"r1": 1, "r2": 1, "shared": 2})
    b.incr("r1", 0.30, 0.34, {"r1": 2, "shared": 3})
    b.read("r2", 0.40, 0.402, {"r1": 2, "r2": 1, "shared": 3})
    for host in ("r1-db1", "r2-db1"):
        b.final(host, {"r1": 2, "r2": 1, "shared": 3})
    return b


def test_clean_history_is_valid() -> None:
    report = check(clean().ops())
    assert report.state == State.OK and report.verdict == "valid", report.summary
    assert report.acknowledged == 3 and report.lost == 0 and report.anomalies == []
    assert report.regions["r1"].writes["ok"] == 2
    assert report.regions["r1"].commit_latency["n"] == 2
    assert report.regions["r1"].commit_latency["p50"] == pytest.approx(0.04)
    assert report.rtt["reference"] == pytest.approx(0.02)
    assert report.regions["r2"].commit_latency_rtt == {"p50": 3.0, "p95": 3.0, "p99": 3.0}
    assert report.regions["r1"].stale_reads == 0 and report.regions["r2"].stale_reads == 0
    assert report.regions["r1"].write_availability == 1.0
    # r1's first write (acked 0.05) first seen in r2 by the read completing at 0.172.
    assert report.visibility["r1->r2"]["n"] == 2
    assert report.visibility["r1->r2"]["max"] == pytest.approx(0.122)
    assert report.visibility["r2->r1"]["p50"] == pytest.approx(0.041)
    assert report.final_checked and report.summary.startswith("valid: 0 lost of 3")


def test_lost_write_is_flagged() -> None:
    b = clean()
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    for host in ("r1-db1", "r2-db1"):
        b.final(host, {"r1": 1, "r2": 1, "shared": 3})  # r1 = 2 was acknowledged, then lost
    report = check(b.ops())
    assert report.state == State.WARNING and report.verdict == "anomalies"
    lost = [a for a in report.anomalies if a.kind == "lost-write"]
    assert [(a.row, a.value, a.region) for a in lost] == [("r1", 2, "r1")]
    assert report.lost == 1
    assert "1 lost-write" in report.summary


def test_divergent_final_state_is_flagged() -> None:
    b = clean()
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    b.final("r1-db1", {"r1": 2, "r2": 1, "shared": 3})
    b.final("r2-db1", {"r1": 1, "r2": 1, "shared": 3})
    report = check(b.ops())
    assert [a.kind for a in report.anomalies] == ["divergent"]
    assert report.lost == 0


def test_non_primary_final_nodes_are_not_used() -> None:
    b = clean()
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    b.final("r1-db1", {"r1": 2, "r2": 1, "shared": 3})
    b.final("r2-db1", {"r1": 0, "r2": 0, "shared": 0}, status="non-Primary")  # cut off, stale: not lost
    report = check(b.ops())
    assert report.verdict == "valid", report.summary


def ending_with(*finals: tuple[str, dict[str, int], int]) -> Builder:
    """The clean history with these final reads (host, counters, conf_id) instead of its own."""
    b = clean()
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    for host, values, conf_id in finals:
        b.final(host, values, conf_id=conf_id)
    return b


def test_a_node_still_primary_in_an_older_configuration_is_not_divergent() -> None:
    # Seen in the lab: a cut healed a moment before the final reads; r2-db1 had not yet
    # noticed that r1 and r3 evicted it (conf_id 15, size 3) while they were at conf_id 16.
    b = ending_with(
        ("r1-db1", {"r1": 2, "r2": 1, "shared": 3}, 16),
        ("r2-db1", {"r1": 1, "r2": 1, "shared": 2}, 15),
        ("r3-db1", {"r1": 2, "r2": 1, "shared": 3}, 16),
    )
    report = check(b.ops())
    assert report.verdict == "valid", report.summary
    assert report.final["r2-db1"]["conf_id"] == 15  # kept in the report, judged by nobody


def test_nodes_of_the_same_configuration_that_disagree_are_divergent() -> None:
    b = ending_with(
        ("r1-db1", {"r1": 2, "r2": 1, "shared": 3}, 16),
        ("r2-db1", {"r1": 2, "r2": 1, "shared": 3}, 15),
        ("r3-db1", {"r1": 1, "r2": 1, "shared": 3}, 16),
    )
    report = check(b.ops())
    assert [a.kind for a in report.anomalies] == ["divergent"]


def test_a_write_only_an_older_primary_configuration_has_is_lost() -> None:
    b = ending_with(
        ("r1-db1", {"r1": 1, "r2": 1, "shared": 2}, 16),  # r1 = 2 was acknowledged
        ("r2-db1", {"r1": 2, "r2": 1, "shared": 3}, 15),  # only the stale component has it
    )
    report = check(b.ops())
    assert "lost-write" in [a.kind for a in report.anomalies]


def test_stale_read_is_flagged_with_staleness() -> None:
    b = clean()
    # r2 reads at 0.50 and still sees r1 = 1 although r1 = 2 was acknowledged at 0.34.
    b.read("r2", 0.50, 0.501, {"r1": 1, "r2": 1, "shared": 3})
    b.read("r2", 0.52, 0.521, {"r1": 2, "r2": 1, "shared": 3}, poll=1)
    report = check(b.ops())
    r2 = report.regions["r2"]
    assert r2.stale_reads == 1 and r2.checked_reads == 3
    assert r2.max_behind == 1
    assert r2.max_staleness == pytest.approx(0.16)
    assert report.verdict == "valid"  # stale reads are measured, not anomalies
    assert "stale reads r2 1" in report.summary


def test_info_is_never_counted_as_lost() -> None:
    b = clean()
    b.incr("r2", 0.60, 5.60, type_="info", error="timeout")  # may or may not have committed: it did not
    b.incr("r1", 0.70, 0.71, type_="fail", error="certification-conflict")
    report = check(b.ops())
    assert report.verdict == "valid", report.summary
    assert report.regions["r2"].writes["info"] == 1
    assert report.errors == {"certification-conflict": 1, "timeout": 1}
    assert report.regions["r1"].conflicts == 1
    assert report.regions["r1"].write_availability == 1.0  # a lost race is not unavailability
    assert report.regions["r2"].write_availability == 0.5


def test_lost_update_is_flagged() -> None:
    b = clean()
    b.incr("r2", 0.50, 0.55, {"r2": 2, "shared": 3})  # shared = 3 was already written by r1
    report = check(b.ops())
    assert "lost-update" in {a.kind for a in report.anomalies}


def test_ok_write_while_non_primary_is_flagged() -> None:
    b = clean()
    b.status("r2", 0.50, 0.501, "non-Primary")
    b.incr("r2", 0.51, 0.52, {"r2": 2, "shared": 4})
    b.status("r2", 0.53, 0.531, "non-Primary")
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    for host in ("r1-db1", "r2-db1"):
        b.final(host, {"r1": 2, "r2": 2, "shared": 4})
    report = check(b.ops())
    assert [a.kind for a in report.anomalies] == ["non-primary-write"]
    assert report.state == State.WARNING
    assert report.regions["r2"].statuses == {"Primary": 1, "non-Primary": 2}


def _served_through_r2s_vip(node: str) -> Builder:
    """r2 cut off (its own node r2-db1 non-Primary); an increment through r2's VIP served by `node`."""
    b = clean()
    b.status("r1", 0.48, 0.481, "Primary", node="r1-db1")
    b.status("r2", 0.50, 0.501, "non-Primary", node="r2-db1")
    b.incr("r2", 0.51, 0.52, {"r2": 2, "shared": 4, "node": node})  # type: ignore[dict-item]
    b.status("r2", 0.53, 0.531, "non-Primary", node="r2-db1")
    b.status("r1", 0.54, 0.541, "Primary", node="r1-db1")
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    for host in ("r1-db1", "r2-db1"):
        b.final(host, {"r1": 2, "r2": 2, "shared": 4})
    return b


def test_write_through_a_vip_served_by_a_remote_primary_is_not_an_anomaly() -> None:
    # Right after a heal: HAProxy sent r2's increment to r1-db1 (a backup) while r2-db1 still read stale.
    report = check(_served_through_r2s_vip("r1-db1").ops())
    assert report.anomalies == [], [a.detail for a in report.anomalies]
    assert report.acknowledged == 1 + 3  # this one and the clean history's


def test_write_served_by_the_non_primary_node_itself_is_an_anomaly_naming_it() -> None:
    report = check(_served_through_r2s_vip("r2-db1").ops())
    assert [a.kind for a in report.anomalies] == ["non-primary-write"]
    assert "acknowledged by r2-db1 (through r2-db1)" in report.anomalies[0].detail


def test_unexpected_write_is_flagged() -> None:
    b = clean()
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    for host in ("r1-db1", "r2-db1"):
        b.final(host, {"r1": 5, "r2": 1, "shared": 6})
    report = check(b.ops())
    assert {a.kind for a in report.anomalies} == {"unexpected-write"}


def test_no_final_state_is_inconclusive() -> None:
    b = clean()
    b._ops = [o for o in b._ops if o[2]["process"] != "final"]
    report = check(b.ops())
    assert report.state == State.CRITICAL and report.verdict == "inconclusive"
    assert "no Primary node could be read" in report.summary


def test_nothing_acknowledged_is_inconclusive() -> None:
    b = Builder()
    b.incr("r1", 0.0, 1.0, type_="fail", error="unreachable")
    b.final("r1-db1", {"r1": 0, "shared": 0})
    assert check(b.ops()).verdict == "inconclusive"


def test_pending_operation_at_the_end() -> None:
    b = clean()
    b._add("r1", "incr", 0.9, None, "ok", invoke_value={"rows": ["r1", "shared"]})
    report = check(b.ops())
    assert report.regions["r1"].writes["pending"] == 1 and report.verdict == "valid"


def test_json_schema() -> None:
    data = check(clean().ops()).to_json()
    assert data["schema"] == SCHEMA and data["code"] == 0 and data["verdict"] == "valid"
    assert set(data) == {
        "schema",
        "state",
        "code",
        "verdict",
        "summary",
        "duration",
        "operations",
        "acknowledged",
        "lost",
        "rows",
        "rtt",
        "regions",
        "visibility",
        "errors",
        "anomalies",
        "initial",
        "final",
    }
    assert set(data["regions"]["r1"]) == {
        "writes",
        "certification_conflicts",
        "write_availability",
        "reads",
        "read_availability",
        "commit_latency",
        "commit_latency_rtt",
        "checked_reads",
        "stale_reads",
        "max_staleness",
        "max_behind",
        "errors",
        "rtt",
        "status",
    }
    assert data["regions"]["r1"]["status"] == {"Primary": 1}
    assert data["rows"] == ["r1", "r2", "shared"]


def test_history_round_trip_and_pairs(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with path.open("w") as sink:
        h = History(sink)
        op = h.invoke("r1", "incr", region="r1", host="r1-db1", address="127.0.1.11:3306", value={"rows": ["r1"]})
        other = h.invoke("r2", "read", region="r2", host="r2-db1", address="127.0.2.11:3306", poll=0)
        h.complete(other, "fail", error="unreachable", message="refused")
        h.complete(op, "ok", {"r1": 1})
    ops = hist.read(path)
    assert [o.index for o in ops] == [0, 1, 2, 3]
    assert ops[3].latency is not None and ops[3].latency >= 0 and ops[3].value == {"r1": 1}
    paired = list(hist.pairs(ops))
    assert [(s.process, e.type if e else None) for s, e in paired] == [("r1", "ok"), ("r2", "fail")]
    assert ops == h.ops


def test_history_rejects_bad_completion_type() -> None:
    h = History()
    op = h.invoke("r1", "read", region="r1", host="h", address="a")
    with pytest.raises(ValueError):
        h.complete(op, "invoke")


def test_percentiles() -> None:
    data = [float(x) for x in range(1, 101)]
    assert percentile(data, 50) == pytest.approx(50.5)
    assert percentile(data, 95) == pytest.approx(95.05)
    assert percentile(data, 99) == pytest.approx(99.01)
    assert percentile(data, 0) == 1.0 and percentile(data, 100) == 100.0
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    with pytest.raises(ValueError):
        percentile(data, 101)
    s = summary([0.002, 0.001, 0.003])
    assert s == {"n": 3, "p50": 0.002, "p95": 0.0029, "p99": 0.00298, "max": 0.003, "mean": 0.002}
    assert summary([])["p50"] is None
