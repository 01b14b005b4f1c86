"""`kgt probe cluster`: the real quorum evaluation fed hand-made node results, in-process.

The probe against a real cluster (and as a subprocess) is in
tests/integration/test_probes_local.py; here the node probing is replaced by canned
`NodeResult`s so every verdict (split brain, no Primary, missing voters by threshold)
is reachable, and the wording the probe relies on is pinned to `quorum.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_probes_fakes import example_topology, run

from toolkit.check import nodes
from toolkit.check.nodes import NodeResult
from toolkit.probes import cluster, runtime
from toolkit.topology import load

UUID_A, UUID_B = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"


def result(
    topology: Any,
    name: str,
    *,
    status: str = "Primary",
    size: int = 3,
    uuid: str = UUID_A,
    conf: int = 5,
    state: str = "Synced",
    members: tuple[str, ...] | None = None,
    weight: int | None = None,
) -> NodeResult:
    host = topology.host(name)
    addresses = members if members is not None else tuple(f"{h.address}:3306" for h in topology.galera_nodes)
    values = {
        "wsrep_cluster_status": status,
        "wsrep_cluster_size": str(size),
        "wsrep_cluster_state_uuid": uuid,
        "wsrep_cluster_conf_id": str(conf),
        "wsrep_local_state_comment": state,
        "wsrep_ready": "ON",
        "wsrep_connected": "ON",
        "wsrep_flow_control_paused": "0.01",
        "wsrep_local_recv_queue": "0",
        "wsrep_evs_repl_latency": "0.001/0.002/0.003/0.0005/10",
        "wsrep_incoming_addresses": ",".join(addresses),
    }
    if weight is not None:
        values["wsrep_cluster_weight"] = str(weight)
    variables = {
        "wsrep_provider_options": f"gmcast.segment = {topology.region(host.region).segment}; x = 1",
        "wsrep_cluster_name": topology.name,
    }
    return NodeResult.from_status(host, values, variables, 0.01)


def down(topology: Any, name: str, error_class: str = "unreachable") -> NodeResult:
    return NodeResult.failed(topology.host(name), error_class, "Can't connect", 0.01)


def evaluate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any, **thresholds: str | None) -> tuple[str, int]:
    path = example_topology(tmp_path)
    topology = load(path)
    canned = make(topology)
    monkeypatch.setattr(nodes, "probe_all", lambda hosts, user, password, timeout, ca=None: canned)
    resource = cluster.Cluster(topology, "kgt_health", "x", runtime.Deadline(5))
    import nagiosplugin

    from toolkit.probes import model

    check = nagiosplugin.Check(
        resource,
        cluster.MissingVoters(resource, thresholds.get("warning", "0"), thresholds.get("critical")),
        nagiosplugin.ScalarContext("perf"),
        model.Rule("finding"),
        model.Summary(lambda results: str(resource.verdict.summary)),
        name=cluster.NAME,
    )
    check()
    text, code = runtime.render(check)
    return text.strip(), code


def all_synced(t: Any) -> list[NodeResult]:
    return [result(t, n) for n in ("r1-db1", "r2-db1", "r3-db1")]


def r3_cut_off(t: Any) -> list[NodeResult]:
    two = ("10.213.1.11:3306", "10.213.2.11:3306")
    return [
        result(t, "r1-db1", size=2, conf=6, members=two),
        result(t, "r2-db1", size=2, conf=6, members=two),
        result(t, "r3-db1", status="non-Primary", size=1, conf=18, members=("10.213.3.11:3306",)),
    ]


def test_all_synced_is_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, code = evaluate(tmp_path, monkeypatch, all_synced)
    assert code == 0, text
    assert "missing=0;0;;0;3" in text
    assert "primary_weight=3;;;0;3" in text
    for label in (
        "missing_r1=0;;;0;1",
        "nodes_synced=3;;;0;3",
        "regions_primary=3;;;0;3",
        "components=1;;;0",
        "flow_control_paused_max=0.01;;;0;1",
        "recv_queue_max=0;;;0",
        "repl_latency_max=0.002s;;;0",
    ):
        assert label in text


def test_region_cut_off_is_judged_by_the_missing_thresholds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, code = evaluate(tmp_path, monkeypatch, r3_cut_off)
    assert code == 1, text
    assert text.startswith("KGT CLUSTER WARNING - 1 of 3 voters missing (r3: r3-db1 non-primary), outside 0")
    assert "missing_r3=1;;;0;1" in text and "primary_weight=2;;;0;3" in text

    text, code = evaluate(tmp_path, monkeypatch, r3_cut_off, warning="1")
    assert code == 0, text  # every warning of the verdict was about the missing voter

    text, code = evaluate(tmp_path, monkeypatch, r3_cut_off, critical="0")
    assert code == 2, text


def test_unreachable_node_counts_as_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def make(t: Any) -> list[NodeResult]:
        two = ("10.213.1.11:3306", "10.213.2.11:3306")
        return [
            result(t, "r1-db1", size=2, members=two),
            result(t, "r2-db1", size=2, members=two),
            down(t, "r3-db1", "timeout"),
        ]

    text, code = evaluate(tmp_path, monkeypatch, make)
    assert code == 1
    assert "1 of 3 voters missing (r3: r3-db1 down (timeout))" in text


def test_other_warnings_stay_whatever_the_thresholds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def make(t: Any) -> list[NodeResult]:
        return [result(t, "r1-db1", state="Donor/Desynced"), result(t, "r2-db1"), result(t, "r3-db1")]

    text, code = evaluate(tmp_path, monkeypatch, make, warning="5")
    assert code == 1
    assert "r1-db1 is Donor/Desynced, not Synced" in text


def test_no_primary_is_critical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def make(t: Any) -> list[NodeResult]:
        return [result(t, "r1-db1", status="non-Primary", size=1), down(t, "r2-db1"), down(t, "r3-db1")]

    text, code = evaluate(tmp_path, monkeypatch, make, warning="5")
    assert code == 2
    assert "KGT CLUSTER CRITICAL - no Primary component" in text
    assert "missing=3;5;;0;3" in text


def test_split_brain_is_critical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def make(t: Any) -> list[NodeResult]:
        return [
            result(t, "r1-db1", size=2, members=("10.213.1.11:3306", "10.213.2.11:3306")),
            result(t, "r2-db1", size=2, members=("10.213.1.11:3306", "10.213.2.11:3306")),
            result(t, "r3-db1", size=1, uuid=UUID_B, members=("10.213.3.11:3306",)),
        ]

    text, code = evaluate(tmp_path, monkeypatch, make)
    assert code == 2
    assert "split brain" in text


def test_nobody_answering_for_credentials_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def make(t: Any) -> list[NodeResult]:
        return [down(t, n, "access-denied") for n in ("r1-db1", "r2-db1", "r3-db1")]

    text, code = evaluate(tmp_path, monkeypatch, make)
    assert code == 3
    assert "no node answered" in text and "access-denied" in text


def test_nobody_reachable_is_critical_as_a_subprocess(tmp_path: Path) -> None:
    # The example topology's 10.213.x addresses are not routed on a test machine (or are
    # blackholed): every node is unreachable or times out, which is CRITICAL, within -t.
    out = run("cluster", str(example_topology(tmp_path)), "-t", "3")
    assert out.state in ("CRITICAL", "UNKNOWN"), out.stdout
    assert out.seconds < 3 + 1 + 1.5
    if out.state == "CRITICAL":
        assert "no node answered" in out.text
