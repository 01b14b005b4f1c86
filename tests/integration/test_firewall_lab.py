"""The example lab runs behind its rendered firewall: peers pass, everyone else is dropped.

`kgt lab up` loads each host's `etc/nftables.d/kgt.nft` before any service starts, so every
other lab, check, probe and drill test of the session runs through it. Here, real packets
between containers show what it refuses: a proxy to a Galera node's gcomm port, a Keystone
host to another region's memcached, VRRP from a Galera node at a proxy; and that the
operator's SSH port stays reachable from the admin network (nothing listens on 22 in the
lab, so "reachable" is a TCP reset, where a dropped SYN would time out).
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.integration.conftest import Lab
from toolkit.lab import services

pytestmark = pytest.mark.integration

WAIT = 2  # seconds nc waits for a TCP handshake: a dropped SYN is never answered


def reaches(lab: Lab, source: str, address: str, port: int) -> bool:
    """Whether `source`'s container completes a TCP handshake with address:port."""
    return lab.host(source).run(f"nc -z -w {WAIT} {address} {port}", timeout=WAIT + 10).ok


def test_the_lab_loaded_every_hosts_ruleset(lab: Lab) -> None:
    for host in lab.topology.hosts:
        listed = lab.host(host.name).run("nft list chain inet kgt input", timeout=20)
        assert listed.ok, f"{host.name}: {listed.stderr}"
        assert "policy drop" in listed.stdout, host.name


def test_a_proxy_is_dropped_at_a_galera_nodes_gcomm_port_a_peer_is_not(lab: Lab) -> None:
    node = lab.topology.host("r2-db1")
    assert reaches(lab, "r1-db1", str(node.address), 4567)  # a Galera peer (through the WAN router)
    assert reaches(lab, "r1-proxy1", str(node.address), 3306)  # a proxy: its backup server
    started = time.monotonic()
    assert not reaches(lab, "r1-proxy1", str(node.address), 4567)
    assert time.monotonic() - started >= WAIT - 0.5  # dropped (no reset): the SYN went unanswered


def test_a_keystone_host_is_dropped_at_another_regions_memcached(lab: Lab) -> None:
    r2 = lab.topology.host("r2-db1")
    port = r2.settings.memcached.port
    assert reaches(lab, "r2-db1", str(r2.address), port)  # its own region's Keystone (itself)
    assert not reaches(lab, "r1-db1", str(r2.address), port)  # r1's Keystone
    assert reaches(lab, "r1-db1", str(r2.address), 3306)  # the same pair, a flow it needs


def test_ssh_stays_reachable_from_the_admin_network_and_other_ports_are_dropped(lab: Lab) -> None:
    """From the lab's host side (10.213.0.1, in admin_networks): 22 answers, memcached's port does not."""
    proxy = str(lab.topology.host("r1-proxy1").address)
    with pytest.raises(ConnectionRefusedError):  # a reset: the firewall let the SYN through
        socket.create_connection((proxy, 22), timeout=WAIT).close()
    with pytest.raises(TimeoutError):  # dropped
        socket.create_connection((proxy, 11211), timeout=WAIT).close()


VRRP_SEND = (
    "python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_RAW, 112); "
    "[s.sendto(bytes(20), (sys.argv[1], 0)) for _ in range(5)]' {address}"
)


def refused_vrrp(lab: Lab, proxy: str) -> int:
    """The packets the proxy's counted VRRP drop has seen."""
    listed = lab.host(proxy).run("nft list chain inet kgt input", timeout=20)
    assert listed.ok, listed.stderr
    match = re.search(r"ip protocol vrrp counter packets (\d+) bytes \d+ drop", listed.stdout)
    assert match, listed.stdout
    return int(match.group(1))


def test_vrrp_from_a_galera_node_is_dropped_at_a_proxy_and_the_vips_stay(lab: Lab) -> None:
    topology = lab.topology
    proxy = topology.host("r1-proxy1")
    before = refused_vrrp(lab, proxy.name)
    sent = lab.host("r1-db1").run(VRRP_SEND.format(address=proxy.address), timeout=20)
    assert sent.ok, sent.stderr
    assert refused_vrrp(lab, proxy.name) >= before + 5
    for vip in topology.region("r1").vips:
        assert str(vip.address) in services.held_vips(lab.host(vip.master)), vip.name
