"""The topology: YAML with lines → pydantic document → frozen model, and its validation."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from builders import EXAMPLE, make_topology, topology_data, write_topology

from toolkit.errors import Problem, TopologyError
from toolkit.topology import Topology, load, load_with_warnings
from toolkit.topology.document import parse_duration
from toolkit.topology.listeners import bindings
from toolkit.topology.loader import LineMap, format_loc, read_yaml
from toolkit.topology.settings import DEFAULT_CORES
from toolkit.topology.survival import half_partition
from toolkit.topology.validate import is_host_address


def errors_of(path: Path) -> list[Problem]:
    with pytest.raises(TopologyError) as info:
        load(path)
    return info.value.problems


# --- the example -------------------------------------------------------------------


def test_example_model(example: Topology) -> None:
    assert example.name == "kgt-example"
    assert example.domain == "kgt.example"
    assert [r.name for r in example.regions] == ["r1", "r2", "r3"]
    assert len(example.hosts) == 9
    assert [h.name for h in example.galera_nodes] == ["r1-db1", "r2-db1", "r3-db1"]
    assert example.voters == example.galera_nodes
    assert example.total_weight == 3
    assert [h.name for h in example.with_role("dns")] == ["r1-proxy1"]
    assert example.secrets_file == EXAMPLE.parent / "example.secrets.yaml"
    assert example.secrets_create is True
    assert example.source == EXAMPLE


def test_model_is_frozen(example: Topology) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.hosts[0].address = IPv4Address("10.0.0.1")  # type: ignore[misc]


def test_host_facts(example: Topology) -> None:
    db = example.host("r2-db1")
    assert db.region == "r2"
    assert db.has("galera") and db.has("keystone") and not db.has("haproxy")
    assert db.is_voter and db.weight == 1
    assert db.gcomm_address == "10.213.2.11:4567"
    proxy = example.host("r2-proxy1")
    assert not proxy.is_voter and proxy.weight == 0
    assert example.region_of(proxy).name == "r2"
    with pytest.raises(KeyError):
        example.host("nope")
    with pytest.raises(KeyError):
        example.region("nope")


def test_region_facts(example: Topology) -> None:
    r2 = example.region("r2")
    assert r2.index == 2 and r2.segment == 2
    assert r2.subnet == IPv4Network("10.213.2.0/24")
    assert [h.name for h in r2.with_role("haproxy")] == ["r2-proxy1", "r2-proxy2"]
    assert r2.weight == 1
    assert [v.name for v in r2.vips] == ["r2-vip1", "r2-vip2"]


def test_vip_owners_rotate_over_the_proxies(example: Topology) -> None:
    assert [(v.name, v.index, v.master) for v in example.region("r1").vips] == [
        ("r1-vip1", 0, "r1-proxy1"),
        ("r1-vip2", 1, "r1-proxy2"),
    ]


def test_vrrp_router_ids_are_unique_across_the_site(example: Topology) -> None:
    assert [v.router_id for v in example.vips] == list(range(51, 57))


def test_router_id_base_is_configurable(tmp_path: Path) -> None:
    t = make_topology(tmp_path, defaults={"keepalived": {"router_id_base": 200}}, vips=3)
    assert [v.router_id for v in t.vips] == list(range(200, 209))


def test_rtt_lookup(tmp_path: Path) -> None:
    t = make_topology(tmp_path, rtt="40ms", pairs=[("r1", "r2", "5ms"), ("r3", "r2", 0.1)])
    assert t.rtt("r1", "r1") == 0.0
    assert t.rtt("r1", "r2") == t.rtt("r2", "r1") == pytest.approx(0.005)
    assert t.rtt("r2", "r3") == pytest.approx(0.1)
    assert t.rtt("r1", "r3") == pytest.approx(0.04)
    assert t.worst_rtt == pytest.approx(0.1)


def test_default_rtt_and_single_region_worst_rtt(tmp_path: Path) -> None:
    assert make_topology(tmp_path / "a").worst_rtt == pytest.approx(0.05)
    assert make_topology(tmp_path / "b", regions=1, per_region=1).worst_rtt == 0.0


def test_vrrp_peers_must_agree_on_priority_and_interval_but_not_interface(tmp_path: Path) -> None:
    data = topology_data()
    data["regions"][1]["hosts"][2]["keepalived"] = {"master_priority": 200, "interface": "eth1"}
    with pytest.raises(TopologyError) as caught:
        load(write_topology(tmp_path, data))
    (problem,) = caught.value.problems
    assert problem.path == "regions[1].hosts[2].keepalived.master_priority"
    wanted = "keepalived.master_priority of r2-proxy2 (200) differs from r2-proxy1 (150) in region 'r2'"
    assert wanted in problem.message
    data["regions"][1]["hosts"][2]["keepalived"] = {"interface": "eth1"}
    load(write_topology(tmp_path / "ok", data))


def test_router_id_base_only_under_defaults(tmp_path: Path) -> None:
    data = topology_data()
    data["regions"][2]["hosts"][1]["keepalived"] = {"router_id_base": 100}
    where = r"regions\[2\]\.hosts\[1\]\.keepalived\.router_id_base"
    with pytest.raises(TopologyError, match=where + ": .* set it under defaults"):
        load(write_topology(tmp_path, data))


# --- settings inheritance -----------------------------------------------------------


def test_built_in_defaults(tmp_path: Path) -> None:
    s = make_topology(tmp_path).host("r1-db1").settings
    assert s.cores == DEFAULT_CORES
    assert (s.galera.weight, s.galera.port, s.galera.gcomm_port, s.galera.health_port) == (1, 3306, 4567, 9200)
    assert s.galera.keepalive_period is None  # derived from the RTT at render time
    assert (s.haproxy.inter, s.haproxy.fall, s.haproxy.detection_bound) == (1.0, 3, 3.0)
    assert (s.keepalived.router_id_base, s.keepalived.master_priority) == (51, 150)


def test_site_then_region_then_host(tmp_path: Path) -> None:
    data = topology_data(defaults={"cores": 8, "galera": {"gcache_size": "2G", "max_connections": 500}})
    data["regions"][1]["settings"] = {"cores": 4, "galera": {"gcache_size": "512M"}}
    data["regions"][1]["hosts"][0]["galera"] = {"max_connections": 50, "suspect_timeout": "6s"}
    data["regions"][1]["hosts"][0]["cores"] = 1
    t = load(write_topology(tmp_path, data))
    r1, r2db, r2proxy = t.host("r1-db1"), t.host("r2-db1"), t.host("r2-proxy1")
    assert (r1.settings.cores, r1.settings.galera.gcache_size, r1.settings.galera.max_connections) == (8, "2G", 500)
    assert (r2proxy.settings.cores, r2proxy.settings.galera.gcache_size) == (4, "512M")
    assert r2proxy.settings.galera.max_connections == 500
    assert (r2db.settings.cores, r2db.settings.galera.gcache_size, r2db.settings.galera.max_connections) == (
        1,
        "512M",
        50,
    )
    assert r2db.settings.galera.suspect_timeout == 6.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(1.5, 1.5), (2, 2.0), ("1500ms", 1.5), ("1.5s", 1.5), ("2m", 120.0), (" 7 ", 7.0), ("0", 0.0), ("50ms", 0.05)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["fast", "1h", "-1s", "", True, None, [1]])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


# --- the loader ---------------------------------------------------------------------


def test_format_loc() -> None:
    assert format_loc(("regions", 0, "hosts", 1, "address")) == "regions[0].hosts[1].address"
    assert format_loc(()) == ""
    assert format_loc(("wan",)) == "wan"


def test_line_map_falls_back_to_the_nearest_ancestor(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("a:\n  b:\n    - x\n    - y: 1\n")
    data, lines = read_yaml(path)
    assert data == {"a": {"b": ["x", {"y": 1}]}}
    assert lines.line(("a",)) == 1
    assert lines.line(("a", "b", 1, "y")) == 4
    assert lines.line(("a", "b", 1, "missing", 3)) == 4
    assert lines.line(("nope",)) == 1
    assert isinstance(lines, LineMap)


def test_every_error_is_collected_before_failing(tmp_path: Path) -> None:
    data = topology_data()
    data["regions"][0]["hosts"][1]["address"] = data["regions"][0]["hosts"][0]["address"]
    data["regions"][1]["hosts"][0]["address"] = "10.99.0.1"
    data["regions"][2]["subnet"] = "10.100.1.0/24"
    problems = errors_of(write_topology(tmp_path, data))
    messages = [p.message for p in problems]
    assert any("used twice" in m for m in messages)
    assert any("not a host address" in m for m in messages)
    assert any("overlaps region 'r1'" in m for m in messages)
    assert all(p.file.endswith("topology.yaml") and p.line for p in problems)


def test_problem_format() -> None:
    assert str(Problem("t.yaml", 3, "a.b", "bad")) == "t.yaml:3: a.b: bad"
    assert str(Problem("t.yaml", None, "", "bad")) == "t.yaml: bad"
    assert str(Problem("t.yaml", 2, "regions", "odd", "warning")) == "t.yaml:2: regions: warning: odd"


def test_missing_file(tmp_path: Path) -> None:
    problems = errors_of(tmp_path / "nope.yaml")
    assert problems[0].message == "no such file"


def test_yaml_anchors_and_aliases_are_allowed(tmp_path: Path) -> None:
    text = """
name: anchors
domain: kgt.example
defaults:
  galera: &g {gcache_size: 256M}
regions:
  - name: r1
    subnet: 10.0.1.0/24
    settings: {galera: *g}
    hosts:
      - {name: r1-db1, address: 10.0.1.11, roles: [galera]}
"""
    t, _ = load_with_warnings(write_topology(tmp_path, text))
    assert t.host("r1-db1").settings.galera.gcache_size == "256M"


# --- semantic checks ----------------------------------------------------------------


def test_host_address_rules() -> None:
    net = IPv4Network("10.0.1.0/24")
    assert is_host_address(IPv4Address("10.0.1.1"), net)
    assert is_host_address(IPv4Address("10.0.1.254"), net)
    assert not is_host_address(IPv4Address("10.0.1.0"), net)
    assert not is_host_address(IPv4Address("10.0.1.255"), net)
    assert not is_host_address(IPv4Address("10.0.2.1"), net)
    assert is_host_address(IPv4Address("10.0.1.0"), IPv4Network("10.0.1.0/31"))
    assert is_host_address(IPv4Address("10.0.1.1"), IPv4Network("10.0.1.0/31"))
    assert is_host_address(IPv4Address("10.0.1.7"), IPv4Network("10.0.1.7/32"))
    assert is_host_address(IPv4Address("10.200.3.4"), IPv4Network("10.0.0.0/8"))  # fast on huge subnets


def test_network_address_is_not_a_host_address(tmp_path: Path) -> None:
    data = topology_data()
    data["regions"][0]["hosts"][0]["address"] = "10.100.1.0"
    problems = errors_of(write_topology(tmp_path, data))
    assert any("not a host address" in p.message for p in problems)


def test_bindings_of_a_proxy_use_the_vips(example: Topology) -> None:
    got = bindings(example, example.host("r1-proxy1"))
    assert (IPv4Address("10.213.1.100"), 3306, "haproxy galera write") in got
    assert (IPv4Address("10.213.1.101"), 5000, "haproxy keystone") in got
    assert (IPv4Address("10.213.1.21"), 8404, "haproxy stats") in got
    assert (IPv4Address("10.213.1.21"), 53, "dns") in got


def test_proxy_and_galera_on_one_host_need_other_ports(tmp_path: Path) -> None:
    layout = ["galera+haproxy+keystone+memcached"]
    clash = "port clash on 10.100.1.11:3306: mariadb and haproxy galera write"
    with pytest.raises(TopologyError, match=re.escape(clash)):
        make_topology(tmp_path / "a", per_region=layout)
    t = make_topology(
        tmp_path / "b",
        per_region=layout,
        defaults={"haproxy": {"write_port": 13306, "read_port": 13307, "keystone_port": 15000}},
    )
    assert t.host("r1-db1").has("haproxy")


def test_settings_for_an_absent_role_warn(tmp_path: Path) -> None:
    data = topology_data()
    data["regions"][0]["hosts"][1]["galera"] = {"weight": 5}
    _, warnings = load_with_warnings(write_topology(tmp_path, data))
    assert [w.message for w in warnings] == ["settings for role 'galera' on a host without that role are ignored"]
    assert warnings[0].path == "regions[0].hosts[1].galera"


def test_keepalived_priority_floor(tmp_path: Path) -> None:
    layout = ["galera+keystone+memcached"] + ["haproxy+keepalived"] * 3
    t = make_topology(tmp_path / "ok", per_region=layout, defaults={"keepalived": {"master_priority": 21}})
    assert t.host("r1-proxy3").settings.keepalived.master_priority == 21
    with pytest.raises(TopologyError, match="would fall to 0 with 3 proxies"):
        make_topology(tmp_path / "bad", per_region=layout, defaults={"keepalived": {"master_priority": 20}})


# --- quorum-shape warnings ----------------------------------------------------------


def test_example_has_no_warnings() -> None:
    _, warnings = load_with_warnings(EXAMPLE)
    assert warnings == []


def test_two_regions_warn_about_each_region_loss_and_the_even_split(tmp_path: Path) -> None:
    _, warnings = load_with_warnings(write_topology(tmp_path, topology_data(regions=2)))
    messages = [w.message for w in warnings]
    assert all(w.severity == "warning" for w in warnings)
    assert any("only 2 regions: losing region 'r1' (weight 1 of 2)" in m for m in messages)
    assert any("only 2 regions: losing region 'r2'" in m for m in messages)
    assert any("total Galera weight 2 is even: a partition between {r1} and the rest" in m for m in messages)


def test_two_regions_with_a_heavier_one_warn_only_about_that_one(tmp_path: Path) -> None:
    _, warnings = load_with_warnings(write_topology(tmp_path, topology_data(regions=2, weights=[2, 1])))
    assert [w.message.split(":")[1].strip() for w in warnings] == [
        "losing region 'r1' (weight 2 of 3) loses Primary everywhere; add a third region (a garbd is enough)"
    ]


def test_even_total_names_the_even_split(tmp_path: Path) -> None:
    _, warnings = load_with_warnings(write_topology(tmp_path, topology_data(regions=4, per_region=1)))
    assert len(warnings) == 1
    assert (
        "total Galera weight 4 is even: a partition between {r1, r2} and the rest (weight 2 each)"
        in warnings[0].message
    )


def test_even_total_without_a_region_split(tmp_path: Path) -> None:
    _, warnings = load_with_warnings(write_topology(tmp_path, topology_data(per_region=1, weights=[3, 3, 2])))
    assert len(warnings) == 1
    assert "total Galera weight 8 is even: a partition into two halves (weight 4 each)" in warnings[0].message


def test_half_partition_matches_brute_force() -> None:
    """The subset-sum search finds what trying every group by growing size would."""

    def brute(names: list[str], weights: list[int], total: int) -> list[str] | None:
        w = dict(zip(names, weights, strict=True))
        for size in range(1, len(names)):
            for group in itertools.combinations(names, size):
                if names[0] in group and 2 * sum(w[g] for g in group) == total:
                    return list(group)
        return None

    rng = random.Random(7)
    for _ in range(400):
        n = rng.randint(1, 7)
        names = [f"r{i}" for i in range(n)]
        weights = [rng.choice([0, 1, 1, 2, 3, 5]) for _ in range(n)]
        if sum(weights) % 2:
            continue
        assert half_partition(names, weights, sum(weights) // 2) == brute(names, weights, sum(weights)), weights


def test_half_partition_is_fast_for_many_regions() -> None:
    names = [f"r{i}" for i in range(40)]
    assert half_partition(names, [3] * 40, 60) == names[:20]


def test_galera_evs_settings_on_a_garbd_host_are_used_not_ignored(tmp_path: Path) -> None:
    from toolkit.topology.evs import evs_timeouts

    data = topology_data(per_region=[1, 1, ["garbd"]])
    data["regions"][2]["hosts"][0]["galera"] = {"suspect_timeout": "9s", "gcache_size": "2G"}
    topology, warnings = load_with_warnings(write_topology(tmp_path, data))
    assert evs_timeouts(topology, topology.host("r3-arb1"))["suspect_timeout"] == 9.0
    about_host = [w.message for w in warnings if w.path.startswith("regions[2].hosts[0]")]
    assert about_host == ["galera settings gcache_size are ignored on a garbd host (it uses only the EVS timeouts)"]
