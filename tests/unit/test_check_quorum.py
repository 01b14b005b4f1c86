"""The quorum evaluation on hand-made node results (no database)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from toolkit.check.nodes import NodeResult
from toolkit.check.quorum import SCHEMA, Reasons, evaluate, region_state
from toolkit.check.state import State
from toolkit.topology import Topology, load

UUID = "11111111-2222-3333-4444-555555555555"
OTHER_UUID = "99999999-2222-3333-4444-555555555555"


def make_topology(tmp_path: Path, regions: int = 3, per_region: int = 1) -> Topology:
    lines = ["name: kgt-unit", "domain: kgt.test", "secrets: {file: s.yaml}", "regions:"]
    for r in range(1, regions + 1):
        lines += [f"  - name: r{r}", f"    subnet: 10.213.{r}.0/24", "    hosts:"]
        for n in range(1, per_region + 1):
            lines.append(f"      - {{name: r{r}-db{n}, address: 10.213.{r}.{10 + n}, roles: [galera]}}")
    path = tmp_path / "topology.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load(path)


def node(
    topology: Topology,
    name: str,
    *,
    status: str = "Primary",
    size: int | None = None,
    conf: int = 7,
    uuid: str = UUID,
    state: str = "Synced",
    members: tuple[str, ...] | None = None,
    **extra: object,
) -> NodeResult:
    host = topology.host(name)
    primary = list(topology.galera_nodes)
    return NodeResult(
        host.name,
        host.region,
        str(host.address),
        3306,
        True,
        cluster_status=status,
        cluster_size=size if size is not None else len(primary),
        state_uuid=uuid,
        conf_id=conf if status == "Primary" else None,
        local_state=state,
        ready=status == "Primary",
        connected=True,
        flow_control_paused=0.0,
        recv_queue=0,
        recv_queue_avg=0.0,
        repl_latency=0.0002,
        gcomm_uuid=f"g-{name}",
        segment=topology.region(host.region).segment,
        cluster_name=topology.name,
        members=members if members is not None else tuple(f"{h.address}:3306" for h in primary),
        **extra,  # type: ignore[arg-type]
    )


def down(topology: Topology, name: str, error_class: str = "unreachable") -> NodeResult:
    return NodeResult.failed(topology.host(name), error_class, f"{error_class} (test)")


@pytest.fixture
def topo(tmp_path: Path) -> Topology:
    return make_topology(tmp_path)


def all_ok(topo: Topology) -> list[NodeResult]:
    return [node(topo, h.name) for h in topo.galera_nodes]


def test_all_ok(topo: Topology) -> None:
    verdict = evaluate(topo, all_ok(topo))
    assert verdict.state == State.OK
    assert verdict.line().startswith("OK: 3/3 nodes Primary and Synced")
    assert [r.state for r in verdict.regions] == ["primary"] * 3
    assert verdict.metrics["primary_weight"] == 3 and verdict.metrics["nodes_synced"] == 3
    assert len(verdict.components) == 1


def test_one_node_missing_is_warning(topo: Topology) -> None:
    members = ("10.213.1.11:3306", "10.213.3.11:3306")
    results = [
        node(topo, "r1-db1", size=2, members=members),
        down(topo, "r2-db1"),
        node(topo, "r3-db1", size=2, members=members),
    ]
    verdict = evaluate(topo, results)
    assert verdict.state == State.WARNING
    assert "r2-db1" in verdict.summary
    assert verdict.region("r2").state == "down"
    assert verdict.primary_weight == 2


def test_a_missing_result_counts_as_unanswered(topo: Topology) -> None:
    verdict = evaluate(topo, all_ok(topo)[:2])
    assert verdict.state == State.WARNING
    assert verdict.region("r3").state == "down"


def test_r3_non_primary_is_warning_naming_r3(topo: Topology) -> None:
    members = ("10.213.1.11:3306", "10.213.2.11:3306")
    results = [
        node(topo, "r1-db1", size=2, members=members),
        node(topo, "r2-db1", size=2, members=members),
        node(topo, "r3-db1", status="non-Primary", size=1, state="Initialized", members=()),
    ]
    verdict = evaluate(topo, results)
    assert verdict.state == State.WARNING
    assert "region r3 is non-Primary" in verdict.summary
    assert verdict.region("r3").state == "read-only"
    assert verdict.region("r1").state == "primary"
    assert verdict.components[0].regions == ("r1", "r2")


def test_split_brain_different_state_uuids_is_critical(topo: Topology) -> None:
    results = [
        node(topo, "r1-db1", size=2),
        node(topo, "r2-db1", size=2),
        node(topo, "r3-db1", size=1, uuid=OTHER_UUID, conf=1, members=("10.213.3.11:3306",)),
    ]
    verdict = evaluate(topo, results)
    assert verdict.state == State.CRITICAL
    assert verdict.summary.startswith("split brain")
    assert len(verdict.components) == 2


def test_split_brain_disjoint_conf_ids_is_critical(topo: Topology) -> None:
    left = ("10.213.1.11:3306", "10.213.2.11:3306")
    results = [
        node(topo, "r1-db1", size=2, conf=8, members=left),
        node(topo, "r2-db1", size=2, conf=8, members=left),
        node(topo, "r3-db1", size=1, conf=9, members=("10.213.3.11:3306",)),
    ]
    assert evaluate(topo, results).state == State.CRITICAL


def test_view_change_half_way_is_only_a_warning(topo: Topology) -> None:
    results = [node(topo, "r1-db1", conf=8), node(topo, "r2-db1", conf=8), node(topo, "r3-db1", conf=9)]
    verdict = evaluate(topo, results)
    assert verdict.state == State.WARNING
    assert "view change" in verdict.summary


def test_no_primary_is_critical(topo: Topology) -> None:
    results = [
        node(topo, h.name, status="non-Primary", size=1, state="Initialized", members=()) for h in topo.galera_nodes
    ]
    verdict = evaluate(topo, results)
    assert verdict.state == State.CRITICAL
    assert verdict.summary.startswith("no Primary component")
    assert {r.state for r in verdict.regions} == {"read-only"}


def test_nothing_answered_access_denied_is_unknown(topo: Topology) -> None:
    verdict = evaluate(topo, [down(topo, h.name, "access-denied") for h in topo.galera_nodes])
    assert verdict.state == State.UNKNOWN
    assert "access-denied" in verdict.summary
    assert {r.state for r in verdict.regions} == {"unknown"}


def test_nothing_answered_unreachable_is_critical(topo: Topology) -> None:
    results = [down(topo, "r1-db1"), down(topo, "r2-db1", "timeout"), down(topo, "r3-db1", "deadline")]
    verdict = evaluate(topo, results)
    assert verdict.state == State.CRITICAL
    assert verdict.summary.startswith("no node answered")


def test_primary_without_weight_majority_is_critical(topo: Topology) -> None:
    # Two nodes left cleanly: the last one stays Primary by dynamic quorum, weight 1 of 3.
    results = [
        node(topo, "r1-db1", size=1, members=("10.213.1.11:3306",), cluster_weight=1),
        down(topo, "r2-db1"),
        down(topo, "r3-db1"),
    ]
    verdict = evaluate(topo, results)
    assert verdict.state == State.CRITICAL
    assert "not a majority" in verdict.summary


def test_weight_from_members_when_cluster_weight_missing(tmp_path: Path) -> None:
    topo = make_topology(tmp_path, regions=3, per_region=2)
    members = tuple(f"{h.address}:3306" for h in topo.galera_nodes if h.region != "r3")
    results = [
        node(topo, h.name, size=4, members=members) if h.region != "r3" else down(topo, h.name)
        for h in topo.galera_nodes
    ]
    verdict = evaluate(topo, results)
    assert verdict.primary_weight == 4
    assert verdict.state == State.WARNING


def test_flow_control_and_donor_are_warnings(topo: Topology) -> None:
    results = all_ok(topo)
    results[0] = replace(results[0], flow_control_paused=0.5)
    results[1] = replace(results[1], local_state="Donor/Desynced")
    verdict = evaluate(topo, results)
    assert verdict.state == State.WARNING
    assert any("flow control" in r for r in verdict.reasons)
    assert any("Donor/Desynced" in r for r in verdict.reasons)
    assert verdict.region("r2").state == "degraded"


def test_wrong_segment_is_a_warning(topo: Topology) -> None:
    results = all_ok(topo)
    results[2] = replace(results[2], segment=1)
    verdict = evaluate(topo, results)
    assert verdict.state == State.WARNING
    assert "gmcast.segment 1" in verdict.summary


def test_json_schema(topo: Topology) -> None:
    data = evaluate(topo, all_ok(topo)).to_json()
    assert data["schema"] == SCHEMA
    assert set(data) == {
        "schema",
        "state",
        "code",
        "summary",
        "reasons",
        "total_weight",
        "primary_weight",
        "expected_size",
        "components",
        "regions",
        "nodes",
        "metrics",
    }
    assert data["state"] == "OK" and data["code"] == 0
    assert set(data["nodes"][0]) >= {
        "host",
        "region",
        "answered",
        "cluster_status",
        "state_uuid",
        "conf_id",
        "segment",
        "flow_control_paused",
        "state",
        "region_segment",
    }
    assert data["regions"][0] == {"name": "r1", "segment": 1, "state": "primary", "nodes": ["r1-db1"]}


@pytest.mark.parametrize(
    ("states", "region"),
    [
        (["synced", "synced"], "primary"),
        (["synced", "down"], "degraded"),
        (["primary", "non-primary"], "degraded"),
        (["non-primary", "down"], "read-only"),
        (["unknown", "down"], "unknown"),
        (["down"], "down"),
        ([], "down"),
    ],
)
def test_region_state_from_its_nodes(states: list[str], region: str) -> None:
    assert region_state(states) == region


def test_reasons_are_worst_first_in_state_and_order() -> None:
    assert Reasons().state == State.OK and Reasons().all() == []
    reasons = Reasons(critical=["c"], unknown=["u"], warning=["w"])
    assert reasons.state == State.UNKNOWN  # nagiosplugin's ranking: UNKNOWN above CRITICAL
    assert reasons.all() == ["c", "u", "w"]
    assert Reasons(warning=["w"]).state == State.WARNING
