"""Parsing what a Galera node says into a NodeResult, and error classes (no database)."""

from __future__ import annotations

from pathlib import Path

import pymysql

from toolkit.check.nodes import NodeResult, classify, one_line, probe_all
from toolkit.topology import load
from toolkit.wsrep import provider_option

STATUS = {
    "wsrep_cluster_status": "Primary",
    "wsrep_cluster_size": "3",
    "wsrep_cluster_weight": "3",
    "wsrep_cluster_state_uuid": "abc",
    "wsrep_cluster_conf_id": "5",
    "wsrep_local_state_comment": "Synced",
    "wsrep_ready": "ON",
    "wsrep_connected": "ON",
    "wsrep_flow_control_paused": "0.25",
    "wsrep_local_recv_queue": "2",
    "wsrep_local_recv_queue_avg": "0.5",
    "wsrep_evs_repl_latency": "0.0001/0.0002/0.0005/0.0001/10",
    "wsrep_gcomm_uuid": "g1",
    "wsrep_incoming_addresses": "10.213.1.11:3306,10.213.2.11:3306",
}
VARIABLES = {
    "wsrep_provider_options": "base_port = 4567; gmcast.segment = 2; pc.weight = 1",
    "wsrep_cluster_name": "kgt-unit",
}


def topology(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: kgt-unit\ndomain: kgt.test\nregions:\n  - name: r1\n    subnet: 127.0.9.0/24\n"
        "    hosts: [{name: r1-db1, address: 127.0.9.9, roles: [galera]}]\n"
    )
    return load(path)


def test_from_status(tmp_path: Path) -> None:
    host = topology(tmp_path).host("r1-db1")
    r = NodeResult.from_status(host, STATUS, VARIABLES, 0.01)
    assert r.primary and r.synced and r.answered
    assert (r.cluster_size, r.cluster_weight, r.conf_id, r.segment) == (3, 3, 5, 2)
    assert r.repl_latency == 0.0002 and r.flow_control_paused == 0.25 and r.recv_queue == 2
    assert r.members == ("10.213.1.11:3306", "10.213.2.11:3306")
    assert r.cluster_name == "kgt-unit" and r.ready is True
    assert r.to_json()["members"] == ["10.213.1.11:3306", "10.213.2.11:3306"]


def test_non_primary_conf_id_is_none(tmp_path: Path) -> None:
    host = topology(tmp_path).host("r1-db1")
    status = {**STATUS, "wsrep_cluster_status": "non-Primary", "wsrep_cluster_conf_id": "18446744073709551615"}
    r = NodeResult.from_status(host, status, {})
    assert not r.primary and r.conf_id is None and r.segment is None


def test_provider_option() -> None:
    assert provider_option("a = 1; gmcast.segment = 3; b=x", "gmcast.segment") == "3"
    assert provider_option("a = 1", "gmcast.segment") is None


def test_classify() -> None:
    assert classify(pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'x' (timed out)")) == "timeout"
    assert (
        classify(pymysql.err.OperationalError(2003, "Can't connect ([Errno 111] Connection refused)")) == "unreachable"
    )
    assert classify(pymysql.err.OperationalError(1045, "Access denied")) == "access-denied"
    assert classify(pymysql.err.OperationalError(1213, "Deadlock found")) == "certification-conflict"
    assert classify(pymysql.err.OperationalError(1047, "WSREP has not yet prepared node")) == "non-primary"
    assert classify(pymysql.err.OperationalError(2013, "Lost connection (timed out)")) == "timeout"
    assert one_line(pymysql.err.OperationalError(1045, "Access\n denied")) == "Access denied (1045)"


def test_probe_all_refused_is_fast_and_never_raises(tmp_path: Path) -> None:
    # 127.0.9.9 on loopback: nothing listens there, so the connect is refused at once.
    [r] = probe_all(topology(tmp_path).galera_nodes, "kgt_health", "x", timeout=2.0)
    assert not r.answered and r.error_class == "unreachable" and r.elapsed < 2.0
