"""Computed values the templates print: every one tested here, not through the templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import make_topology, topology_data, write_topology

from toolkit.render import context as ctx
from toolkit.topology import Topology, load

# --- formatting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (7.5, "PT7.5S"),
        (1.0, "PT1S"),
        (60.0, "PT1M"),
        (120.0, "PT2M"),
        (90.0, "PT90S"),
        (0.25, "PT0.25S"),
        (14.5, "PT14.5S"),
    ],
)
def test_iso_period(seconds: float, text: str) -> None:
    assert ctx.iso_period(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(1.0, "1s"), (0.5, "500ms"), (3600.0, "3600s"), (2.25, "2250ms"), (0.001, "1ms")]
)
def test_haproxy_time(seconds: float, text: str) -> None:
    assert ctx.haproxy_time(seconds) == text


def test_number() -> None:
    assert (ctx.number(1.0), ctx.number(0.5), ctx.number(3)) == ("1", "0.5", "3")


# --- Galera -------------------------------------------------------------------------


def test_gcomm_url_lists_every_voter_region_by_region(example: Topology) -> None:
    assert ctx.gcomm_url(example) == "gcomm://10.213.1.11:4567,10.213.2.11:4567,10.213.3.11:4567"


def test_gcomm_url_includes_garbd_on_its_port(tmp_path: Path) -> None:
    t = make_topology(tmp_path, per_region=[2, 2, ["garbd"]], defaults={"garbd": {"port": 4444}})
    assert ctx.gcomm_url(t) == (
        "gcomm://10.100.1.11:4567,10.100.1.12:4567,10.100.2.11:4567,10.100.2.12:4567,10.100.3.11:4444"
    )


def test_segments_are_region_positions(catalyst: Topology) -> None:
    for index, region in enumerate(catalyst.regions, start=1):
        for host in region.galera_nodes:
            assert dict(ctx.provider_options(catalyst, host))["gmcast.segment"] == str(index)


def test_provider_options_in_order(example: Topology) -> None:
    options = ctx.provider_options(example, example.host("r3-db1"))
    assert options == [
        ("gmcast.segment", "3"),
        ("gmcast.listen_addr", "tcp://10.213.3.11:4567"),
        ("ist.recv_addr", "10.213.3.11:4568"),
        ("evs.keepalive_period", "PT1S"),
        ("evs.suspect_timeout", "PT5S"),
        ("evs.inactive_timeout", "PT15S"),
        ("evs.install_timeout", "PT7.5S"),
        ("evs.send_window", "512"),
        ("evs.user_send_window", "512"),
        ("gcache.size", "128M"),
        ("pc.weight", "1"),
        ("socket.ssl_cert", "/etc/mysql/tls/server.crt"),
        ("socket.ssl_key", "/etc/mysql/tls/server.key"),
        ("socket.ssl_ca", "/etc/mysql/tls/ca.crt"),
        ("socket.ssl_cipher", "ECDHE+AESGCM:ECDHE+CHACHA20"),
    ]


def test_provider_options_follow_host_settings(tmp_path: Path) -> None:
    t = make_topology(
        tmp_path, weights={"r2-db1": 3}, defaults={"galera": {"gcomm_port": 5567, "ist_port": 5568, "send_window": 128}}
    )
    options = dict(ctx.provider_options(t, t.host("r2-db1")))
    assert options["pc.weight"] == "3"
    assert options["gmcast.listen_addr"] == "tcp://10.100.2.11:5567"
    assert options["ist.recv_addr"] == "10.100.2.11:5568"
    assert options["evs.send_window"] == "128"


def evs_for(tmp_path: Path, rtt: str, **galera: object) -> dict[str, float]:
    t = make_topology(tmp_path, rtt=rtt, defaults={"galera": galera} if galera else None)
    return ctx.evs_timeouts(t, t.host("r1-db1"))


@pytest.mark.parametrize(
    ("rtt", "keepalive", "suspect", "inactive", "install"),
    [
        ("0ms", 1.0, 5.0, 15.0, 7.5),  # never below the stock values
        ("50ms", 1.0, 5.0, 15.0, 7.5),
        ("250ms", 1.0, 5.0, 15.0, 7.5),  # 4 RTT = 1 s exactly
        ("300ms", 1.2, 6.0, 18.0, 9.0),  # keepalive 4 RTT, suspect 5 keepalives
        ("700ms", 2.8, 14.0, 42.0, 21.0),  # 0.7 * 40 is 28.000000000000004 in floats: still 2.8
        ("1s", 4.0, 20.0, 60.0, 30.0),
        ("333ms", 1.4, 7.0, 21.0, 10.5),  # 4 RTT = 1.332 rounds up to the next tenth
    ],
)
def test_evs_timeouts_derive_from_the_worst_rtt(
    tmp_path: Path, rtt: str, keepalive: float, suspect: float, inactive: float, install: float
) -> None:
    got = evs_for(tmp_path, rtt)
    assert got == pytest.approx(
        {
            "keepalive_period": keepalive,
            "suspect_timeout": suspect,
            "inactive_timeout": inactive,
            "install_timeout": install,
        }
    )
    assert got["keepalive_period"] >= 4 * float(rtt.rstrip("ms") or 0) / (1000 if rtt.endswith("ms") else 1) - 1e-9
    assert got["suspect_timeout"] >= 5 * got["keepalive_period"] - 1e-9
    assert got["inactive_timeout"] >= 3 * got["suspect_timeout"] - 1e-9


def test_evs_timeouts_use_the_worst_pair(tmp_path: Path) -> None:
    t = make_topology(tmp_path, rtt="10ms", pairs=[("r1", "r3", "600ms")])
    # The worst RTT of the site applies to every node, even r2 which is near both.
    assert ctx.evs_timeouts(t, t.host("r2-db1"))["keepalive_period"] == pytest.approx(2.4)


def test_explicit_evs_timeouts_win(tmp_path: Path) -> None:
    got = evs_for(tmp_path, "700ms", suspect_timeout="30s", install_timeout=9)
    assert got["suspect_timeout"] == 30.0 and got["install_timeout"] == 9.0
    assert got["keepalive_period"] == pytest.approx(2.8)  # the others stay derived


def test_slave_threads(tmp_path: Path) -> None:
    t = make_topology(tmp_path, defaults={"cores": 6})
    assert ctx.slave_threads(t.host("r1-db1")) == 6
    t2 = make_topology(tmp_path / "b", defaults={"cores": 6, "galera": {"slave_threads": 3}})
    assert ctx.slave_threads(t2.host("r1-db1")) == 3


# --- HAProxy backends ---------------------------------------------------------------


def names(backends: list[ctx.ServerLine]) -> list[tuple[str, bool]]:
    return [(b.host.name, b.backup) for b in backends]


def test_regions_by_distance_nearest_first_file_order_on_ties(tmp_path: Path) -> None:
    t = make_topology(tmp_path, regions=4, per_region=1, rtt="50ms", pairs=[("r1", "r4", "10ms"), ("r1", "r3", "10ms")])
    assert [r.name for r in ctx.regions_by_distance(t, t.region("r1"))] == ["r3", "r4", "r2"]
    assert [r.name for r in ctx.regions_by_distance(t, t.region("r2"))] == ["r1", "r3", "r4"]


def test_write_backends_one_active_then_local_then_nearest(tmp_path: Path) -> None:
    layout = ["galera", "galera", "haproxy"]
    t = make_topology(tmp_path, per_region=layout, rtt="50ms", pairs=[("r2", "r3", "5ms")])
    assert names(ctx.ordered_backends(t, t.region("r2"), "galera")) == [
        ("r2-db1", False),
        ("r2-db2", True),
        ("r3-db1", True),
        ("r3-db2", True),
        ("r1-db1", True),
        ("r1-db2", True),
    ]


def test_write_backends_of_a_region_without_galera_start_remote(tmp_path: Path) -> None:
    t = make_topology(tmp_path, per_region=[1, 1, ["haproxy", "keystone"]])
    # No local node: the nearest remote one becomes the single active server.
    assert names(ctx.ordered_backends(t, t.region("r3"), "galera")) == [("r1-db1", False), ("r2-db1", True)]


def test_read_and_keystone_backends_balance_local_hosts(catalyst: Topology) -> None:
    wlg = catalyst.region("nz-wlg")
    read = names(ctx.balanced_backends(catalyst, wlg, "galera"))
    assert read[:3] == [("nz-wlg-db1", False), ("nz-wlg-db2", False), ("nz-wlg-db3", False)]
    # nz-hlz (10 ms) is nearer to nz-wlg than nz-por (12 ms).
    assert [n for n, _ in read[3:]] == [f"nz-hlz-db{i}" for i in (1, 2, 3)] + [f"nz-por-db{i}" for i in (1, 2, 3)]
    assert all(backup for _, backup in read[3:])
    keystone = names(ctx.balanced_backends(catalyst, wlg, "keystone"))
    assert [b for _, b in keystone] == [False] * 3 + [True] * 6


def test_listen_addresses(example: Topology, tmp_path: Path) -> None:
    assert ctx.listen_addresses(example, example.host("r1-proxy2")) == ["10.213.1.100", "10.213.1.101"]
    t = make_topology(tmp_path, per_region=["galera+keystone+memcached", "haproxy"])
    assert ctx.listen_addresses(t, t.host("r1-proxy1")) == ["10.100.1.12"]


# --- keepalived ---------------------------------------------------------------------


def vrrp(t: Topology, host: str) -> list[tuple[str, str, int]]:
    return [(i.vip.name, i.state, i.priority) for i in ctx.vrrp_instances(t, t.host(host))]


def test_vrrp_two_proxies_two_vips(example: Topology) -> None:
    assert vrrp(example, "r1-proxy1") == [("r1-vip1", "MASTER", 150), ("r1-vip2", "BACKUP", 140)]
    assert vrrp(example, "r1-proxy2") == [("r1-vip1", "BACKUP", 140), ("r1-vip2", "MASTER", 150)]


def test_vrrp_priorities_fall_by_ten_along_the_rotation(tmp_path: Path) -> None:
    layout = ["galera+keystone+memcached"] + ["haproxy+keepalived"] * 3
    t = make_topology(tmp_path, per_region=layout, vips=4)
    assert vrrp(t, "r1-proxy1") == [
        ("r1-vip1", "MASTER", 150),
        ("r1-vip2", "BACKUP", 130),
        ("r1-vip3", "BACKUP", 140),
        ("r1-vip4", "MASTER", 150),
    ]
    assert vrrp(t, "r1-proxy2") == [
        ("r1-vip1", "BACKUP", 140),
        ("r1-vip2", "MASTER", 150),
        ("r1-vip3", "BACKUP", 130),
        ("r1-vip4", "BACKUP", 140),
    ]
    # For every VIP: exactly one MASTER and distinct priorities, so failover is ordered.
    for vip in t.region("r1").vips:
        prios = [p for h in ("r1-proxy1", "r1-proxy2", "r1-proxy3") for v, _, p in vrrp(t, h) if v == vip.name]
        assert sorted(prios, reverse=True) == [150, 140, 130]


def test_vrrp_master_priority_setting(tmp_path: Path) -> None:
    t = make_topology(tmp_path, defaults={"keepalived": {"master_priority": 200}})
    assert vrrp(t, "r2-proxy2") == [("r2-vip1", "BACKUP", 190), ("r2-vip2", "MASTER", 200)]


def test_vrrp_peers_are_the_other_proxies(example: Topology, tmp_path: Path) -> None:
    instances = ctx.vrrp_instances(example, example.host("r2-proxy1"))
    assert {i.peers for i in instances} == {("10.213.2.22",)}
    t = make_topology(tmp_path, per_region=["galera+keystone+memcached", "haproxy+keepalived"])
    assert {i.peers for i in ctx.vrrp_instances(t, t.host("r1-proxy1"))} == {()}


# --- Keystone -----------------------------------------------------------------------


def test_memcache_servers_are_the_local_ones(catalyst: Topology) -> None:
    assert ctx.memcache_servers(catalyst.region("nz-hlz")) == [
        "172.16.3.31:11211",
        "172.16.3.32:11211",
        "172.16.3.33:11211",
    ]


def test_db_address_and_port(example: Topology, tmp_path: Path) -> None:
    assert (ctx.db_address(example.region("r2")), ctx.db_port(example.region("r2"))) == ("10.213.2.100", 3306)
    t = make_topology(tmp_path, per_region=["galera+keystone+memcached", "haproxy"])
    assert ctx.db_address(t.region("r1")) == "10.100.1.12"  # no VIP: the proxy itself
    data = topology_data(per_region=["galera+keystone+memcached", "haproxy"])
    data["regions"][0]["hosts"][1]["haproxy"] = {"write_port": 23306}
    t2 = load(write_topology(tmp_path / "b", data))
    assert ctx.db_port(t2.region("r1")) == 23306
    assert ctx.db_port(t2.region("r2")) == 3306


def test_keystone_url(example: Topology, tmp_path: Path) -> None:
    assert ctx.keystone_url(example, example.region("r3")) == "https://keystone.r3.kgt.example:5000/v3"
    plain = make_topology(tmp_path)  # no tls: section
    assert ctx.keystone_url(plain, plain.region("r1")) == "http://keystone.r1.kgt.example:5000/v3"
