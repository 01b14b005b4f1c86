"""The drill checker on hand-made histories: gaps, availability, verdict against the prediction, lost writes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.builders import EXAMPLE
from toolkit.check.history import Done, Op
from toolkit.drills import checker
from toolkit.drills.checker import availability, gaps, longest
from toolkit.drills.faults import derive_bounds, predict, resolve
from toolkit.topology import load


class Recorder:
    """Writes a history by hand: every op with its own times."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(
        self,
        process: str,
        f: str,
        t0: float,
        t1: float | None,
        type_: str = "ok",
        value: Any = None,
        region: str | None = None,
        host: str = "",
        error: str | None = None,
        invoke_value: Any = None,
    ) -> None:
        self.ops.append(Op(len(self.ops), process, region, host, "", "invoke", f, invoke_value, t0, ""))
        if t1 is not None:
            self.ops.append(
                Op(len(self.ops), process, region, host, "", type_, f, value, t1, "", latency=t1 - t0, error=error)
            )

    def sorted(self) -> list[Op]:
        ops = sorted(self.ops, key=lambda o: (o.time, o.index))
        return [
            Op(
                i,
                *[
                    getattr(o, k)
                    for k in (
                        "process",
                        "region",
                        "host",
                        "address",
                        "type",
                        "f",
                        "value",
                        "time",
                        "wall",
                        "latency",
                        "error",
                        "message",
                        "poll",
                    )
                ],
            )
            for i, o in enumerate(ops)
        ]


def done(t0: float, t1: float | None, type_: str = "ok") -> Done:
    start = Op(0, "p", "r1", "", "", "invoke", "incr", None, t0, "")
    end = None if t1 is None else Op(1, "p", "r1", "", "", type_, "incr", None, t1, "")
    return Done(start, end)


# --- gaps and availability ------------------------------------------------------------------


def test_gap_spans_from_last_ok_to_next_ok_across_failures() -> None:
    stream = [
        done(0.0, 0.1),
        done(0.1, 0.2),
        done(0.2, 0.5, "fail"),
        done(0.5, 2.0, "info"),
        done(2.0, 2.3),
        done(2.3, 2.4),
    ]
    found = gaps(stream, begin=0.0)
    assert len(found) == 1
    assert found[0].start == 0.2 and found[0].end == 2.3 and found[0].failures == 2
    assert found[0].seconds(10) == pytest.approx(2.1)


def test_slow_success_counts_as_a_gap_only_past_the_minimum() -> None:
    stream = [done(0.0, 0.1), done(0.1, 0.9), done(0.9, 2.5)]
    found = gaps(stream, begin=0.0, min_gap=1.0)
    assert [(g.start, g.end, g.failures) for g in found] == [(0.9, 2.5, 0)]


def test_stream_that_never_recovers_ends_in_an_open_gap() -> None:
    stream = [done(0.0, 0.1), done(0.1, 1.0, "fail"), done(1.0, None)]
    found = gaps(stream, begin=0.0)
    assert found[-1].end is None
    assert found[-1].seconds(horizon=5.0) == pytest.approx(4.9)


def test_longest_gap_overlapping_a_window() -> None:
    stream = [done(0, 0.5), done(0.5, 1.0, "fail"), done(1.0, 1.5), done(5, 5.1), done(5.1, 8, "fail"), done(8, 9.0)]
    found = gaps(stream, begin=0.0)
    assert longest(found, 4.0, 10.0, 10.0).start == 5.1  # type: ignore[union-attr]
    assert longest(found, 0.0, 1.2, 10.0).start == 0.5  # type: ignore[union-attr]
    assert longest(found, 2.0, 3.0, 10.0) is not None  # the slow 1.5 → 5.1 stretch
    assert longest(found, 9.5, 9.9, 10.0) is None


def test_availability_counts_operations_invoked_in_the_window() -> None:
    stream = [done(0.0, 0.1), done(1.0, 1.1, "fail"), done(1.5, 3.0, "info"), done(2.0, 2.1), done(9.0, 9.1)]
    a = availability(stream, 1.0, 5.0)
    assert (a["ok"], a["fail"], a["info"]) == (1, 1, 1)
    assert a["availability"] == pytest.approx(1 / 3, abs=1e-4)
    assert availability(stream, 20, 30)["availability"] is None


# --- whole drills ---------------------------------------------------------------------------


def drill_history(
    kind: str = "region-partition",
    region: str = "r3",
    *,
    lose: tuple[str, float] | None = None,
    observed: dict[str, str] | None = None,
    interrupted: bool = False,
    topology_path: Any = EXAMPLE,
    token_gap_r1: float = 0.0,
    write_gap_survivors: float = 6.0,
    races_lost_by: str | None = None,
    cut_off_issues: str = "ok",
) -> list[Op]:
    """A region-partition of `region` on the example lab, written as the drill would record it.

    Survivors stall `write_gap_survivors` seconds after the fault at t=10 and go on; the cut-off
    region's writes fail; the heal at t=24, healthy at t=30, final reads at t=40. Region
    `races_lost_by` (a survivor) loses every certification race from the fault to the heal.
    The cut-off region's token issues are `cut_off_issues` (ok: served read-only; fail: HTTP 500)
    from the fault to the heal, while its validations go on answering (from Keystone's cache).
    """
    topology = load(topology_path)
    fault = resolve(topology, kind, region=region)
    prediction = predict(topology, fault)
    bounds = derive_bounds(topology, fault)
    regions = [r.name for r in topology.regions]
    nodes = {h.name: h.region for h in topology.galera_nodes}
    rec = Recorder()
    plan = {
        "schema": "kgt.drill.plan/1",
        "drill": kind,
        "fault": fault.to_json(),
        "prediction": prediction.to_json(),
        "bounds": bounds.to_json(),
        "timing": {"duration": 40, "fault_at": 10, "heal_after": 14},
        "topology": {
            "name": topology.name,
            "path": str(topology_path),
            "regions": regions,
            "galera_nodes": nodes,
            "expected_size": len(nodes),
            "keystone_endpoints": {},
        },
        "dirty_reads": dict.fromkeys(nodes, True),
        "backend": "test",
    }
    rec.op("drill", "plan", 0.0, 0.0, value=plan)
    rec.op("setup", "read", 0.1, 0.12, value={r: 0 for r in [*regions, "shared"]}, region=regions[0], invoke_value=None)
    cut_off = {r for r, o in prediction.regions.items() if o["database"] != "primary"}
    counters = {r: 0 for r in [*regions, "shared"]}
    acked: dict[str, int] = {}
    for r in regions:
        t = 0.5
        while t < 40:
            in_fault = 10.0 <= t < 24.5
            if r in cut_off and in_fault:
                rec.op(r, "incr", t, t + 0.2, "fail", region=r, error="non-primary", invoke_value={"rows": [r]})
                t += 0.5
                continue
            if r not in cut_off and 10.0 <= t < 10.0 + write_gap_survivors:
                t = 10.0 + write_gap_survivors  # commits blocked until the view change
            if r == races_lost_by and 10.0 <= t < 24.5:
                rec.op(
                    r,
                    "incr",
                    t,
                    t + 0.2,
                    "fail",
                    region=r,
                    error="certification-conflict",
                    invoke_value={"rows": sorted([r, "shared"])},
                )
                t += 0.25
                continue
            counters[r] += 1
            counters["shared"] += 1
            value = {r: counters[r], "shared": counters["shared"]}
            rec.op(r, "incr", t, t + 0.05, value=value, region=r, invoke_value={"rows": sorted([r, "shared"])})
            acked[r] = counters[r]
            t += 0.25
        if r in cut_off:
            for t in (12.0, 15.0, 20.0):
                rec.op(f"dirty-{r}", "dirty-read", t, t + 0.01, value=dict(counters), region=r)
        # Keystone through the region's endpoint
        t = 0.3
        while t < 40:
            if r == regions[0] and token_gap_r1 and 11.0 <= t < 11.0 + token_gap_r1:
                rec.op(f"ks-issue-{r}", "issue", t, t + 0.3, "fail", region=r, error="http-503")
                t += 0.3
                continue
            failing = r in cut_off and 10.0 <= t < 24.5 and cut_off_issues == "fail"
            rec.op(
                f"ks-issue-{r}",
                "issue",
                t,
                t + 0.1,
                "fail" if failing else "ok",
                value=None if failing else {"token": "abc"},
                region=r,
                error="http-500" if failing else None,
            )
            rec.op(
                f"ks-validate-{r}",
                "validate",
                t + 0.1,
                t + 0.15,
                value={"token": "abc", "issuer": "r1"},
                region=r,
                invoke_value={"token": "abc", "issuer": "r1"},
            )
            t += 0.2
    observed = observed or {}
    for host, region_name in nodes.items():
        t = 0.2
        while t < 40:
            state = observed.get(host, prediction.nodes[host]) if 15.0 < t < 24.5 else "Primary"
            if state == "down":
                rec.op(f"mon-{host}", "galera", t, t + 0.01, "fail", region=region_name, host=host, error="unreachable")
            else:
                size = (
                    len(nodes)
                    if state == "Primary" and not (10 <= t < 24.5)
                    else (sum(1 for h, s in prediction.nodes.items() if s == "Primary") if state == "Primary" else 1)
                )
                rec.op(
                    f"mon-{host}",
                    "galera",
                    t,
                    t + 0.01,
                    region=region_name,
                    host=host,
                    value={
                        "status": "Primary" if state == "Primary" else "non-Primary",
                        "size": size,
                        "state": "Synced" if state == "Primary" else "Initialized",
                        "conf_id": 3,
                    },
                )
            t += 0.5
    rec.op("nemesis", "inject", 10.0, 10.3, value={"cut": region}, region=region)
    if interrupted:
        rec.op("nemesis", "heal", 15.0, 15.5, value={"network": "healed"}, region=region)
        rec.op("drill", "interrupted", 15.6, 15.6, "info", error="interrupted")
    else:
        rec.op("nemesis", "heal", 24.0, 24.5, value={"network": "healed"}, region=region)
        rec.op("drill", "healthy", 24.5, 30.0, value={"seconds": 5.5})
    final = dict(counters)
    if lose:
        row, by = lose
        final[row] -= int(by)
    for i, (host, region_name) in enumerate(nodes.items()):  # one process: one operation at a time
        t = 41.0 + i
        rec.op(
            "final",
            "status",
            t,
            t + 0.1,
            value={"status": "Primary", "size": len(nodes), "state": "Synced", "conf_id": 5},
            region=region_name,
            host=host,
        )
        rec.op("final", "read", t + 0.2, t + 0.3, value=final, region=region_name, host=host)
    return rec.sorted()


def test_partition_that_behaves_as_predicted_passes() -> None:
    result = checker.check(drill_history())
    assert result.verdict == "pass", [e for e in result.expectations if e.ok is not True]
    assert result.code == 0
    r1 = result.measurements["regions"]["r1"]["writes"]
    assert r1["max_gap"] == pytest.approx(6.0, abs=0.3)
    assert result.measurements["regions"]["r3"]["writes"]["availability"] == 0.0
    assert result.measurements["lost_writes"] == 0
    assert result.measurements["detect"]["galera"] is not None
    names = {(e.name, e.region) for e in result.expectations}
    assert ("writes rejected", "r3") in names and ("dirty reads served", "r3") in names
    assert result.line().startswith("PASS: region-partition r3; prediction held")


def test_a_lost_acknowledged_write_fails_the_drill() -> None:
    result = checker.check(drill_history(lose=("r1", 1)))
    assert result.verdict == "fail"
    assert result.code == 1
    assert result.measurements["lost_writes"] >= 1
    lost = next(e for e in result.expectations if e.name == "no lost writes")
    assert lost.ok is False


def test_observation_against_the_prediction_fails_the_drill() -> None:
    # r3 stays Primary while cut off: the analysis said it could not.
    result = checker.check(drill_history(observed={"r3-db1": "Primary"}))
    held = next(e for e in result.expectations if e.name == "prediction held")
    assert held.ok is False
    assert result.verdict == "fail"
    assert "prediction FAILED" in result.summary


def test_survivor_gap_beyond_the_configured_bound_fails() -> None:
    bound = derive_bounds(load(EXAMPLE), resolve(load(EXAMPLE), "region-partition", region="r3")).write_gap["r1"]
    result = checker.check(drill_history(write_gap_survivors=bound + 2))
    failed = {(e.name, e.region) for e in result.expectations if e.ok is False}
    assert ("writes continue", "r1") in failed
    assert result.verdict == "fail"


def test_cut_off_region_whose_tokens_fail_while_read_only_is_one_gap_and_fails_the_drill() -> None:
    # The bug this drill missed: every issue through r3 failed for the whole cut, but cached
    # validations in between split the failures into short gaps and the run passed.
    result = checker.check(drill_history(cut_off_issues="fail"))
    r3 = result.measurements["regions"]["r3"]
    failing = [g for g in r3["tokens"]["gaps"] if g["failures"]]
    assert len(failing) == 1, r3["tokens"]["gaps"]
    # From the last issue before the cut (done at ≈ 9.9 s) to the first after the heal (≈ 24.6 s).
    assert failing[0]["seconds"] == pytest.approx(24.6 - 9.9, abs=0.3)
    assert r3["tokens"]["max_gap"] == pytest.approx(24.6 - 9.9, abs=0.3)
    assert r3["validations"]["max_gap"] is None  # the validations went on answering
    served = next(e for e in result.expectations if e.name == "tokens served read-only")
    assert (served.region, served.ok) == ("r3", False)
    assert served.observed.startswith("issued 0/")
    assert result.verdict == "fail"
    assert "r3 read-only from" in result.summary and "tokens issued 0%" in result.summary
    assert "failed: tokens served read-only r3" in result.summary


def test_cut_off_region_that_serves_tokens_read_only_passes_and_says_so() -> None:
    result = checker.check(drill_history())
    served = next(e for e in result.expectations if e.name == "tokens served read-only")
    assert (served.region, served.ok) == ("r3", True), served
    ro = result.measurements["regions"]["r3"]["read_only"]
    # r3-db1 reported non-Primary from t=15 (fault injected at 10.3): + HAProxy detection + slack.
    bounds = result.plan["bounds"]
    assert ro["non_primary_at"] == pytest.approx(15.01 - 10.3, abs=0.3)
    assert ro["since"] == pytest.approx(ro["non_primary_at"] + bounds["haproxy_detection"] + bounds["slack"])
    assert ro["tokens"]["availability"] == 1.0 and ro["validations"]["availability"] == 1.0
    assert ro["tokens"]["attempts"] > 10
    assert "r3 read-only from" in result.summary and "tokens issued 100%, validated 100%" in result.summary
    assert result.verdict == "pass"


def test_regions_predicted_writable_get_no_read_only_expectation() -> None:
    result = checker.check(drill_history())
    assert {e.region for e in result.expectations if e.name == "tokens served read-only"} == {"r3"}
    assert "read_only" not in result.measurements["regions"]["r1"]


def test_token_gap_is_measured_per_region_endpoint() -> None:
    result = checker.check(drill_history(token_gap_r1=2.0))
    tokens = result.measurements["regions"]["r1"]["tokens"]
    assert tokens["max_gap"] == pytest.approx(2.1, abs=0.25)
    assert result.measurements["regions"]["r2"]["tokens"]["max_gap"] is None


def test_interrupted_drill_is_unknown() -> None:
    result = checker.check(drill_history(interrupted=True))
    assert result.verdict == "unknown"
    assert result.code == 2
    assert "interrupted" in result.summary


def test_topology_without_a_survivor_passes_when_both_sides_lose_primary(tmp_path: Any) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(EXAMPLE.read_text().split("  - name: r3")[0])
    result = checker.check(drill_history(region="r2", topology_path=path))
    prediction = result.plan["prediction"]
    assert not prediction["survives"]
    assert prediction["nodes"] == {"r1-db1": "non-Primary", "r2-db1": "non-Primary"}
    assert result.verdict == "pass", [e for e in result.expectations if e.ok is not True]
    assert "NO PRIMARY" in result.summary and "topology flagged" in result.summary
    assert prediction["flags"] and prediction["fixes"]


def test_history_without_a_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="plan"):
        checker.check([])


def test_a_lost_certification_race_is_an_answer_not_a_gap() -> None:
    conflict = Done(
        Op(0, "p", "r1", "", "", "invoke", "incr", None, 0.3, ""),
        Op(1, "p", "r1", "", "", "fail", "incr", None, 0.4, "", error="certification-conflict"),
    )
    stream = [done(0.0, 0.1), conflict, done(2.0, 2.1)]
    assert [g.failures for g in gaps(stream, 0.0)] == [1]
    assert gaps(stream, 0.0, answered=frozenset({"certification-conflict"})) == [
        checker.Gap(0.4, 2.1, 0)
    ]  # only the slow stretch after the answer


def test_a_survivor_that_loses_every_certification_race_still_writes() -> None:
    # Over a slow WAN the far region loses most races on the shared row: its node is Primary
    # and answers every write, so the region is not unavailable (found by the wan-degrade drill).
    result = checker.check(drill_history(races_lost_by="r2"))
    assert result.verdict == "pass", [e for e in result.expectations if e.ok is not True]
    writes = result.measurements["regions"]["r2"]["writes"]
    assert writes["ok"] == 0 and writes["availability"] is None and writes["conflicts"] > 20
    kept = next(e for e in result.expectations if e.name == "writes continue" and e.region == "r2")
    assert kept.ok is True and "lost certification races" in kept.observed


def test_a_survivor_whose_writes_go_unanswered_fails() -> None:
    history = drill_history()
    silenced = [
        op
        if not (op.process == "r2" and op.f == "incr" and op.type == "ok" and 10.0 <= op.time < 24.5)
        else Op(
            op.index,
            op.process,
            op.region,
            op.host,
            op.address,
            "info",
            op.f,
            None,
            op.time + 3.0,
            op.wall,
            latency=None,
            error="timeout",
        )
        for op in history
    ]
    result = checker.check(silenced)
    failed = {(e.name, e.region) for e in result.expectations if e.ok is False}
    assert ("writes continue", "r2") in failed
