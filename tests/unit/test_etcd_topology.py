"""The etcd role: members, the majority rule against region losses, WAN timings, the rendered config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import fake_secrets, topology_data, write_topology

from toolkit.errors import TopologyError
from toolkit.render import engine
from toolkit.topology import Topology, load, load_with_warnings
from toolkit.topology import etcd as etcd_rule
from toolkit.topology.listeners import bindings


def with_members(data: dict[str, Any], *hosts: str) -> dict[str, Any]:
    for region in data["regions"]:
        for host in region["hosts"]:
            if host["name"] in hosts:
                host["roles"].append("etcd")
    return data


def warnings_of(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    return [p.message for p in load_with_warnings(write_topology(tmp_path, data))[1]]


def test_the_example_has_one_member_per_region_and_survives_any_region_loss(example: Topology) -> None:
    assert [h.name for h in etcd_rule.members(example)] == ["r1-db1", "r2-db1", "r3-db1"]
    assert etcd_rule.fatal_region_losses(example) == []
    assert etcd_rule.majority(3) == 2


def test_an_even_number_of_members_is_a_warning(tmp_path: Path) -> None:
    data = with_members(topology_data(), "r1-db1", "r2-db1")
    (message,) = [m for m in warnings_of(tmp_path, data) if "etcd" in m]
    assert message.startswith("2 etcd members: use an odd number")


def test_a_region_holding_half_the_members_is_named(tmp_path: Path) -> None:
    data = with_members(topology_data(), "r1-db1", "r1-proxy1", "r1-proxy2", "r2-db1", "r3-db1")
    (message,) = [m for m in warnings_of(tmp_path, data) if "etcd" in m]
    assert "losing region 'r1' leaves etcd without a majority (5 members, 3 in 'r1')" in message


def test_a_spread_cluster_gets_no_warning(tmp_path: Path) -> None:
    data = with_members(topology_data(), "r1-db1", "r2-db1", "r3-db1")
    assert not [m for m in warnings_of(tmp_path, data) if "etcd" in m]


def test_timings_derive_from_the_worst_rtt_between_members(tmp_path: Path) -> None:
    """Heartbeat ≈ the worst member RTT (never below 100 ms), election ≥ 10 × it (never below 1 s)."""
    far = with_members(topology_data(rtt="150ms", pairs=[("r1", "r2", "30ms")]), "r1-db1", "r2-db1", "r3-db1")
    assert etcd_rule.timings(load(write_topology(tmp_path / "far", far))) == etcd_rule.Timings(0.15, 1.5)
    near = with_members(topology_data(rtt="150ms", pairs=[("r1", "r2", "30ms")]), "r1-db1", "r2-db1")
    # r3 holds no member: only r1–r2's 30 ms counts, and etcd's defaults are the floor
    assert etcd_rule.timings(load_with_warnings(write_topology(tmp_path / "near", near))[0]) == etcd_rule.Timings(
        0.1, 1.0
    )


def test_timings_are_site_wide_and_etcd_refuses_a_short_election(tmp_path: Path) -> None:
    data = with_members(topology_data(), "r1-db1", "r2-db1", "r3-db1")
    data["regions"][1]["hosts"][0]["etcd"] = {"heartbeat": "200ms"}
    with pytest.raises(TopologyError, match=r"regions\[1\]\.hosts\[0\]\.etcd\.heartbeat: .* set it under defaults"):
        load(write_topology(tmp_path / "host", data))
    del data["regions"][1]["hosts"][0]["etcd"]
    data["defaults"] = {"etcd": {"heartbeat": "300ms", "election_timeout": "1s"}}
    with pytest.raises(TopologyError, match=r"defaults\.etcd\.election_timeout: .* under 5 heartbeats"):
        load(write_topology(tmp_path / "short", data))
    data["defaults"] = {"etcd": {"election_timeout": "60s"}}
    with pytest.raises(TopologyError, match="etcd refuses more than 50s"):
        load(write_topology(tmp_path / "long", data))
    data["defaults"] = {"etcd": {"heartbeat": "100ms", "election_timeout": "600ms"}}
    messages = warnings_of(tmp_path / "slow", {**data, "wan": {"rtt": "100ms"}})
    assert any("under 10 × the worst RTT between members (0.1s)" in m for m in messages)


def test_etcd_ports_are_listeners_and_may_not_clash(tmp_path: Path) -> None:
    data = with_members(topology_data(), "r1-db1", "r2-db1", "r3-db1")
    t = load(write_topology(tmp_path / "ok", data))
    assert {"etcd client", "etcd peer"} <= {w for _, _, w in bindings(t, t.host("r1-db1"))}
    data["regions"][0]["hosts"][0]["etcd"] = {"client_port": 3306}
    with pytest.raises(TopologyError, match=re.escape("port clash on 10.100.1.11:3306: mariadb and etcd client")):
        load(write_topology(tmp_path / "clash", data))


def _config(topology: Topology, host: str) -> dict[str, Any]:
    files = {f.path: f for f in engine.render(topology, fake_secrets())}
    return yaml.safe_load(files[f"{host}/etc/etcd/kgt.conf.yml"].content)  # type: ignore[no-any-return]


def test_the_rendered_config_names_every_peer_with_tls_and_the_timings(example: Topology) -> None:
    conf = _config(example, "r2-db1")
    assert conf["name"] == "r2-db1"
    assert conf["initial-cluster"] == (
        "r1-db1=https://10.213.1.11:2380,r2-db1=https://10.213.2.11:2380,r3-db1=https://10.213.3.11:2380"
    )
    assert conf["listen-client-urls"] == "https://10.213.2.11:2379,https://127.0.0.1:2379"
    assert conf["advertise-client-urls"] == "https://10.213.2.11:2379"
    assert (conf["heartbeat-interval"], conf["election-timeout"]) == (100, 1000)
    assert conf["enable-grpc-gateway"] is True
    peer = conf["peer-transport-security"]
    assert peer == {
        "cert-file": "/etc/etcd/tls/server.crt",
        "key-file": "/etc/etcd/tls/server.key",
        "trusted-ca-file": "/etc/etcd/tls/ca.crt",
        "client-cert-auth": True,
    }
    # clients log in with a password: a trusted CA on the client port would make etcd demand certificates
    assert "trusted-ca-file" not in conf["client-transport-security"]
    assert conf["client-transport-security"]["client-cert-auth"] is False


def test_without_tls_the_urls_are_plain_http(tmp_path: Path) -> None:
    t = load(write_topology(tmp_path, with_members(topology_data(), "r1-db1", "r2-db1", "r3-db1")))
    conf = _config(t, "r1-db1")
    assert conf["initial-cluster"].startswith("r1-db1=http://10.100.1.11:2380,")
    assert "client-transport-security" not in conf and "peer-transport-security" not in conf
