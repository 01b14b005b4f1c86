"""What each host listens on: the address and port of every listener its roles open.

`validate` checks them for clashes (and the firewall's SSH port against them); the tests
check that the firewall forgets none.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from toolkit.topology.model import Host, Topology


def bindings(topology: Topology, host: Host) -> list[tuple[IPv4Address, int, str]]:
    """(address, port, what) of every listener the host's roles open."""
    s = host.settings
    out: list[tuple[IPv4Address, int, str]] = []
    a = host.address
    if host.has("galera"):
        g = s.galera
        out += [
            (a, g.port, "mariadb"),
            (a, g.gcomm_port, "galera gcomm"),
            (a, g.ist_port, "galera IST"),
            (a, g.sst_port, "galera SST"),
            (a, g.health_port, "kgt health"),
        ]
    if host.has("garbd"):
        out.append((a, s.garbd.port, "garbd"))
    if host.has("haproxy"):
        h = s.haproxy
        vips = [v.address for v in topology.region(host.region).vips] or [a]
        for vip in vips:
            out += [
                (vip, h.write_port, "haproxy galera write"),
                (vip, h.read_port, "haproxy galera read"),
                (vip, h.keystone_port, "haproxy keystone"),
            ]
        out.append((a, h.stats_port, "haproxy stats"))
    if host.has("keystone"):
        out.append((a, s.keystone.port, "keystone"))
    if host.has("memcached"):
        out.append((a, s.memcached.port, "memcached"))
    if host.has("dns"):
        out.append((a, s.dns.port, "dns"))
    if host.has("etcd"):
        out += [(a, s.etcd.client_port, "etcd client"), (a, s.etcd.peer_port, "etcd peer")]
    return out
