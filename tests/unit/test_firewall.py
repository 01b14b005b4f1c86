"""The firewall's flows (toolkit/render/firewall.py): exact per role, and each one what a rendered config uses."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from builders import CATALYST, EXAMPLE, fake_secrets, topology_data, write_topology

from toolkit.render import engine
from toolkit.render.firewall import Flow, admitted, inbound_flows, nft_set, rule
from toolkit.topology import Topology, load, load_with_warnings
from toolkit.topology.listeners import bindings

PROXIES = ("10.213.1.21", "10.213.1.22", "10.213.2.21", "10.213.2.22", "10.213.3.21", "10.213.3.22")
REGIONS = ("10.213.1.0/24", "10.213.2.0/24", "10.213.3.0/24")
AGENTS = tuple(sorted((*PROXIES, "10.213.2.11", "10.213.3.11")))  # every host but r1-db1
CLIENTS_AND_MONITORING = ("10.213.0.1", *REGIONS)  # the example's monitoring host, then every region subnet


def nets(*items: str) -> tuple[IPv4Network, ...]:
    return tuple(IPv4Network(i) for i in items)


def addrs(*items: str) -> tuple[IPv4Address, ...]:
    return tuple(IPv4Address(i) for i in items)


def with_firewall(tmp_path: Path, firewall: dict[str, Any], **kwargs: Any) -> Topology:
    data = topology_data(**kwargs)
    data["firewall"] = {"enabled": True, **firewall}
    return load(write_topology(tmp_path, data))


# --- the example's flows, exactly -------------------------------------------------------------


def test_galera_host_flows_of_the_example(example: Topology) -> None:
    """r1-db1 (galera, keystone, memcached): peers, every proxy, monitoring, its region's Keystone (itself: lo)."""
    assert inbound_flows(example, example.host("r1-db1")) == [
        Flow(
            "tcp",
            (3306, 4444, 4567, 4568),
            nets("10.213.2.11", "10.213.3.11"),
            "galera peers: MariaDB, gcomm, IST, SST",
        ),
        Flow("udp", (4567,), nets("10.213.2.11", "10.213.3.11"), "galera peers: gcomm over UDP"),
        Flow("tcp", (3306,), nets(*PROXIES), "haproxy galera-write/galera-read servers"),
        Flow("tcp", (9200,), nets(*PROXIES), "haproxy health checks"),
        Flow("tcp", (3306, 9200), nets("10.213.0.1"), "monitoring: kgt check/probe, health"),
        Flow("tcp", (3306,), nets("10.213.0.0/24"), "admin networks: kgt_admin"),
        Flow("tcp", (5000,), nets(*PROXIES), "haproxy keystone-api servers"),
        Flow("tcp", (5000,), nets("10.213.0.1"), "monitoring: kgt probe keystone --node"),
        # memcached: only its region's Keystone, which is this host itself (over lo): no flow
        Flow("tcp", (2380,), nets("10.213.2.11", "10.213.3.11"), "etcd peers: raft"),
        Flow("tcp", (2379,), nets(*AGENTS), "etcd clients: every host's kgt agent"),
        Flow("tcp", (2379,), nets("10.213.0.0/24"), "etcd clients: kgt publish, rollout (admin, monitoring)"),
        Flow("tcp", (22,), nets("10.213.0.0/24"), "ssh: admin networks"),
    ]


def test_proxy_flows_of_the_example(example: Topology) -> None:
    """r1-proxy2 (haproxy, keepalived): listeners on the VIPs, Keystone's database, stats, VRRP, SSH."""
    assert inbound_flows(example, example.host("r1-proxy2")) == [
        Flow(
            "tcp",
            (3306, 3307, 5000),
            nets(*CLIENTS_AND_MONITORING),
            "clients and monitoring: galera and keystone listeners",
            addrs("10.213.1.100", "10.213.1.101"),
        ),
        Flow("tcp", (3306,), nets("10.213.1.11"), "keystone [database] connection", addrs("10.213.1.100")),
        Flow("tcp", (8404,), nets("10.213.0.0/24"), "haproxy stats: admin networks and monitoring"),
        Flow("vrrp", (), nets("10.213.1.21"), "vrrp adverts of the region's other proxies"),
        Flow("tcp", (22,), nets("10.213.0.0/24"), "ssh: admin networks"),
    ]


def test_dns_host_flows_of_the_example(example: Topology) -> None:
    """r1-proxy1 is the proxy flows plus DNS over TCP and UDP from the client networks and monitoring."""
    flows = inbound_flows(example, example.host("r1-proxy1"))
    dns = [f for f in flows if 53 in f.ports]
    assert dns == [
        Flow("tcp", (53,), nets(*CLIENTS_AND_MONITORING), "dns: clients and monitoring"),
        Flow("udp", (53,), nets(*CLIENTS_AND_MONITORING), "dns: clients and monitoring"),
    ]
    assert [f for f in flows if f not in dns][-2] == Flow(
        "vrrp", (), nets("10.213.1.22"), "vrrp adverts of the region's other proxies"
    )
    assert not any(53 in f.ports for f in inbound_flows(example, example.host("r2-proxy1")))


# --- what must not pass -----------------------------------------------------------------------


@pytest.mark.parametrize("source", [EXAMPLE, CATALYST], ids=["example", "catalyst"])
def test_a_proxy_never_reaches_a_galera_node_gcomm_ist_or_sst(source: Path) -> None:
    t = load(source)
    for node in t.galera_nodes:
        flows = inbound_flows(t, node)
        g = node.settings.galera
        for proxy in t.with_role("haproxy"):
            for protocol, port in (
                ("tcp", g.gcomm_port),
                ("udp", g.gcomm_port),
                ("tcp", g.ist_port),
                ("tcp", g.sst_port),
            ):
                assert not admitted(flows, proxy.address, protocol, port), (proxy.name, node.name, port)
            assert admitted(flows, proxy.address, "tcp", g.port)  # the galera listeners' servers


@pytest.mark.parametrize("source", [EXAMPLE, CATALYST], ids=["example", "catalyst"])
def test_a_keystone_host_never_reaches_another_regions_memcached(source: Path) -> None:
    t = load(source)
    for cache in t.with_role("memcached"):
        flows = inbound_flows(t, cache)
        for keystone in t.with_role("keystone"):
            allowed = admitted(flows, keystone.address, "tcp", cache.settings.memcached.port)
            if keystone.region != cache.region:
                assert not allowed, (keystone.name, cache.name)
            elif keystone.name != cache.name:
                assert allowed, (keystone.name, cache.name)


@pytest.mark.parametrize("source", [EXAMPLE, CATALYST], ids=["example", "catalyst"])
def test_vrrp_only_between_the_proxies_of_one_region(source: Path) -> None:
    t = load(source)
    for proxy in t.with_role("keepalived"):
        flows = inbound_flows(t, proxy)
        for other in t.hosts:
            peer = other.has("keepalived") and other.region == proxy.region and other.name != proxy.name
            assert admitted(flows, other.address, "vrrp") == peer, (other.name, proxy.name)
    node = t.galera_nodes[0]
    assert not any(admitted(inbound_flows(t, p), node.address, "vrrp") for p in t.with_role("keepalived"))


def test_a_client_reaches_the_listeners_only_on_the_vips(example: Topology) -> None:
    listeners = inbound_flows(example, example.host("r2-proxy1"))[0]
    assert listeners.destinations == addrs("10.213.2.100", "10.213.2.101")
    assert listeners.admits(IPv4Address("10.213.3.55"), "tcp", 5000)
    assert not listeners.admits(IPv4Address("192.0.2.1"), "tcp", 5000)


# --- every flow is what a rendered config uses --------------------------------------------------


def rendered(t: Topology) -> dict[str, str]:
    return {f.path: f.content for f in engine.render(t, fake_secrets())}


def sources_by_why(flows: list[Flow], why: str) -> set[str]:
    return {str(n.network_address) for f in flows if f.why == why for n in f.sources or ()}


def servers(haproxy_cfg: str, listener: str) -> dict[str, bool]:
    """Address → whether it runs checks of its own, for each server line of one listener."""
    block = haproxy_cfg.split(f"listen {listener}\n", 1)[1].split("\n\n", 1)[0]
    out: dict[str, bool] = {}
    for address, how in re.findall(r"^\s+server \S+ ([\d.]+):\d+ (check|track)", block, re.M):
        out[address] = out.get(address, False) or how == "check"
    return out


def edge(tmp_path: Path) -> Topology:
    """A lone proxy, a region whose proxy has no VIP, a garbd (the shapes the shipped topologies lack)."""
    data = topology_data(
        per_region=[
            ["galera+keystone+memcached", "haproxy+keepalived+dns"],
            ["galera", "galera", "haproxy", "keystone+memcached"],
            ["garbd"],
        ]
    )
    data["firewall"] = {"enabled": True, "monitoring": ["192.0.2.10"]}
    return load(write_topology(tmp_path, data))


@pytest.fixture(params=["example", "catalyst", "edge"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Topology:
    return edge(tmp_path) if request.param == "edge" else load(EXAMPLE if request.param == "example" else CATALYST)


def test_galera_and_keystone_flows_are_the_rendered_haproxy_servers(site: Topology) -> None:
    files = rendered(site)
    configs = {str(h.address): files[f"{h.name}/etc/haproxy/haproxy.cfg"] for h in site.with_role("haproxy")}
    for node in site.galera_nodes:
        me = str(node.address)
        flows = inbound_flows(site, node)
        lines = {p: {**servers(cfg, "galera-read"), **servers(cfg, "galera-write")} for p, cfg in configs.items()}
        talking = {p for p, found in lines.items() if me in found}
        checking = {
            p
            for p, cfg in configs.items()
            if servers(cfg, "galera-read").get(me) or servers(cfg, "galera-write").get(me)
        }
        assert sources_by_why(flows, "haproxy galera-write/galera-read servers") == talking - {me}
        assert sources_by_why(flows, "haproxy health checks") == checking - {me}
        assert talking and checking == talking
    for api in site.with_role("keystone"):
        talking = {
            p
            for p, cfg in configs.items()
            if "keystone-api" in cfg and str(api.address) in servers(cfg, "keystone-api")
        }
        assert sources_by_why(inbound_flows(site, api), "haproxy keystone-api servers") == talking - {str(api.address)}


def test_memcached_and_database_flows_are_the_rendered_keystone_conf(site: Topology) -> None:
    files = rendered(site)
    for api in site.with_role("keystone"):
        conf = files[f"{api.name}/etc/keystone/keystone.conf"]
        for server in re.search(r"^memcache_servers = (.*)$", conf, re.M).group(1).split(","):  # type: ignore[union-attr]
            address, port = server.split(":")
            cache = next(h for h in site.hosts if str(h.address) == address)
            assert cache.name == api.name or admitted(inbound_flows(site, cache), api.address, "tcp", int(port))
        db, port = re.search(r"@([\d.]+):(\d+)/keystone", conf).groups()  # type: ignore[union-attr]
        holders = [p for p in site.with_role("haproxy") if p.region == api.region]
        for proxy in holders:
            flows = [f for f in inbound_flows(site, proxy) if IPv4Address(db) in f.destinations]
            ok = any(f.admits(api.address, "tcp", int(port)) for f in flows)
            assert ok == (db in [str(v.address) for v in site.region(api.region).vips] or db == str(proxy.address))


def test_vrrp_flows_are_the_rendered_unicast_peers(site: Topology) -> None:
    files = rendered(site)
    for proxy in site.with_role("keepalived"):
        conf = files[f"{proxy.name}/etc/keepalived/keepalived.conf"]
        peers = set(re.findall(r"unicast_peer \{\n((?:\s+[\d.]+\n)+)", conf))
        wanted = {a for block in peers for a in block.split()}
        assert {
            str(n.network_address) for f in inbound_flows(site, proxy) if f.protocol == "vrrp" for n in f.sources or ()
        } == wanted


def test_every_port_a_host_binds_has_a_flow(site: Topology) -> None:
    """Nothing the rendered configs listen on is forgotten (the bindings `validate` checks for clashes)."""
    for host in site.hosts:
        ports = {p for f in inbound_flows(site, host) for p in f.ports}
        for _, port, what in bindings(site, host):
            if what == "haproxy keystone" and not site.with_role("keystone"):
                continue  # no keystone-api listener is rendered
            if what == "memcached" and {k.name for k in site.region(host.region).with_role("keystone")} == {host.name}:
                continue  # its only client is the host itself, over lo
            assert port in ports, (host.name, port, what)


def test_the_health_port_is_the_one_the_rendered_service_binds(example: Topology) -> None:
    unit = rendered(example)["r2-db1/etc/systemd/system/kgt-health.service"]
    port = int(re.search(r"--port (\d+)", unit).group(1))  # type: ignore[union-attr]
    flow = next(f for f in inbound_flows(example, example.host("r2-db1")) if f.why == "haproxy health checks")
    assert flow.ports == (port,)


def test_garbd_accepts_its_port_from_every_galera_peer(tmp_path: Path) -> None:
    t = edge(tmp_path)
    garbd = t.with_role("garbd")[0]
    flows = inbound_flows(t, garbd)
    assert [(f.protocol, f.ports) for f in flows[:2]] == [("tcp", (4567,)), ("udp", (4567,))]
    assert flows[0].sources == tuple(IPv4Network(h.address) for h in t.galera_nodes)


def test_a_lone_proxy_accepts_no_vrrp_and_a_proxy_without_vips_listens_on_its_address(tmp_path: Path) -> None:
    t = edge(tmp_path)
    assert not [f for f in inbound_flows(t, t.host("r1-proxy1")) if f.protocol == "vrrp"]
    listeners = inbound_flows(t, t.host("r2-proxy1"))[0]
    assert listeners.destinations == (t.host("r2-proxy1").address,)
    db = inbound_flows(t, t.host("r2-proxy1"))[1]
    assert db.why == "keystone [database] connection" and db.sources == (IPv4Network("10.100.2.14"),)


# --- settings -----------------------------------------------------------------------------------


def test_defaults_client_networks_every_region_subnet_and_ssh_from_anywhere(tmp_path: Path) -> None:
    t = with_firewall(tmp_path, {})
    fw = t.firewall
    assert fw.client_networks == nets("10.100.1.0/24", "10.100.2.0/24", "10.100.3.0/24")
    assert (fw.mode, fw.admin_networks, fw.monitoring, fw.ssh, fw.ssh_port) == ("include", None, (), True, 22)
    flows = inbound_flows(t, t.host("r1-proxy1"))
    assert Flow("tcp", (22,), None, "ssh: anywhere (no admin_networks)") in flows
    assert Flow("tcp", (8404,), None, "haproxy stats: anywhere (no admin_networks)") in flows
    assert not [f for f in inbound_flows(t, t.host("r1-db1")) if f.why.startswith("monitoring")]


def test_admin_networks_client_networks_and_ssh_port(tmp_path: Path) -> None:
    t = with_firewall(
        tmp_path,
        {"admin_networks": ["192.0.2.0/24"], "client_networks": ["198.51.100.0/24"], "monitoring": ["192.0.2.9"]},
        defaults={"haproxy": {"stats_port": 9000}},
    )
    flows = inbound_flows(t, t.host("r1-proxy1"))
    assert flows[0].sources == nets("192.0.2.9", "198.51.100.0/24")
    assert Flow("tcp", (9000,), nets("192.0.2.0/24"), "haproxy stats: admin networks and monitoring") in flows
    assert flows[-1] == Flow("tcp", (22,), nets("192.0.2.0/24"), "ssh: admin networks")
    # a narrower client network never cuts Keystone off its database
    assert admitted(flows, IPv4Address("10.100.1.11"), "tcp", 3306)
    t2 = with_firewall(tmp_path / "b", {"ssh_port": 2222, "admin_networks": ["192.0.2.0/24"]})
    assert inbound_flows(t2, t2.host("r1-db1"))[-1].ports == (2222,)


def test_ssh_closes_only_when_the_topology_says_so(tmp_path: Path) -> None:
    t = with_firewall(tmp_path, {"ssh": False})
    for host in t.hosts:
        assert not admitted(inbound_flows(t, host), IPv4Address("10.100.1.50"), "tcp", 22)


def test_settings_of_a_disabled_firewall_are_a_warning(tmp_path: Path) -> None:
    data = topology_data()
    data["firewall"] = {"mode": "complete", "ssh_port": 2222}
    _, warnings = load_with_warnings(write_topology(tmp_path, data))
    assert [w.message for w in warnings if w.path == "firewall"] == [
        "firewall settings mode, ssh_port are ignored: enabled is false"
    ]


# --- rendering ----------------------------------------------------------------------------------


def test_rule_text() -> None:
    flow = Flow("tcp", (3306, 3307), nets("10.0.0.0/8", "192.0.2.1"), "why", addrs("10.0.0.100"))
    assert (
        rule(flow)
        == 'ip daddr 10.0.0.100 ip saddr { 10.0.0.0/8, 192.0.2.1 } tcp dport { 3306, 3307 } accept comment "why"'
    )
    assert rule(Flow("vrrp", (), nets("10.0.0.2"), "v")) == 'ip saddr 10.0.0.2 ip protocol vrrp accept comment "v"'
    assert rule(Flow("tcp", (22,), None, "ssh")) == 'tcp dport 22 accept comment "ssh"'
    assert nft_set(["a"]) == "a" and nft_set([1, 2]) == "{ 1, 2 }"


def test_sources_are_deduplicated_and_nested_networks_dropped(tmp_path: Path) -> None:
    t = with_firewall(tmp_path, {"client_networks": ["10.100.0.0/16", "10.100.1.0/24"], "monitoring": ["10.100.9.9"]})
    assert inbound_flows(t, t.host("r1-proxy1"))[0].sources == nets("10.100.0.0/16")


@pytest.mark.parametrize("source", [EXAMPLE, CATALYST], ids=["example", "catalyst"])
def test_comments_fit_nft(source: Path) -> None:
    t = load(source)
    for host in t.hosts:
        for flow in inbound_flows(t, host):
            assert len(flow.why.encode()) <= 128 and '"' not in flow.why


def test_off_renders_no_firewall_and_on_one_file_per_host(example: Topology, tmp_path: Path) -> None:
    lab = load(Path(EXAMPLE).with_name("catalyst-lab.yaml"))
    assert not lab.firewall.enabled
    assert not [f for f in engine.render(lab, fake_secrets()) if "nftables" in f.path]
    files = [f for f in engine.render(example, fake_secrets()) if "nftables" in f.path]
    assert [f.path for f in files] == [
        f"{h.name}/etc/nftables.d/kgt.nft" for h in sorted(example.hosts, key=lambda h: h.name)
    ]
    assert {(f.service, f.mode) for f in files} == {("nftables", 0o644)}


def test_complete_mode_also_renders_nftables_conf(tmp_path: Path) -> None:
    t = with_firewall(tmp_path, {"mode": "complete"})
    files = {f.path: f for f in engine.render(t, fake_secrets())}
    conf = files["r1-db1/etc/nftables.conf"]
    assert conf.mode == 0o755 and "flush ruleset" in conf.content
    assert 'include "nftables.d/kgt.nft"' in conf.content
    assert "r1-db1/etc/nftables.d/kgt.nft" in files


def test_the_reload_plan_loads_firewalls_before_any_service(example: Topology) -> None:
    from toolkit.render import diff

    files = [f for f in engine.render(example, fake_secrets()) if f.host == "r1-db1"]
    changed = [diff.Change(f.path, f.host, "changed", "", f.service, f.reload) for f in files]
    plan = diff.reload_plan(example, changed)
    assert plan[0] == "r1-db1: nft -f /etc/nftables.d/kgt.nft (replaces table inet kgt in one transaction)"
    assert all("nft" not in step for step in plan[1:])
