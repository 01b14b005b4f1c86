"""What each host's firewall lets in: its inbound flows as data, and each flow as one nft rule.

`inbound_flows(topology, host)` is the one home of that decision. It reads the same helpers
the other configs are rendered from (HAProxy's server lists, keepalived's unicast peers,
Keystone's database address and memcache servers), so a flow exists exactly when a
rendered config makes a peer connect, and follows it when the topology changes. The
template (`nftables/kgt.nft.j2`) only prints `rule(flow)` for each flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from toolkit.render import context as ctx
from toolkit.topology.model import Host, Topology

# Accepted from anywhere, before any flow: ping, and the errors path MTU discovery
# (fragmentation-needed is a destination-unreachable; packet-too-big in IPv6), traceroute
# and broken connections need; in IPv6 also neighbour discovery, without which the host
# cannot resolve its neighbours' link-layer addresses at all.
RULESET = "etc/nftables.d/kgt.nft"  # where each host's ruleset is rendered (`nft -f /RULESET` loads it)
ICMP_TYPES = ("echo-request", "destination-unreachable", "time-exceeded", "parameter-problem")
ICMPV6_TYPES = (
    "echo-request",
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "mld-listener-query",
)
NFT_COMMENT_MAX = 128  # bytes nft keeps of a rule's comment


@dataclass(frozen=True)
class Flow:
    """Inbound traffic one host accepts: protocol, destination ports, sources, and why.

    `sources` is None for anywhere (IPv4 and IPv6); otherwise IPv4 networks, collapsed and
    sorted (a host is a /32). `destinations` limits the flow to some addresses of the host
    (a proxy's listeners bind only the VIPs); empty means any of its addresses.
    """

    protocol: str  # tcp | udp | vrrp (IP protocol 112, no ports)
    ports: tuple[int, ...]
    sources: tuple[IPv4Network, ...] | None
    why: str
    destinations: tuple[IPv4Address, ...] = ()

    def admits(self, source: IPv4Address, protocol: str, port: int | None = None) -> bool:
        """Whether this flow lets `source` reach the host over `protocol` (at `port`)."""
        if protocol != self.protocol or (port is not None and port not in self.ports):
            return False
        return self.sources is None or any(source in net for net in self.sources)


def admitted(flows: Iterable[Flow], source: IPv4Address, protocol: str, port: int | None = None) -> bool:
    """Whether any of `flows` lets `source` in over `protocol` (at `port`)."""
    return any(f.admits(source, protocol, port) for f in flows)


def _networks(items: Iterable[IPv4Network | Host], but: Host | None = None) -> tuple[IPv4Network, ...]:
    """Networks and hosts' addresses (as /32), sorted, each once, none inside another listed one.

    `but` (the host itself, which reaches itself over lo) is left out. Neighbouring networks
    are not merged, so every source still reads as the topology wrote it.
    """
    nets = {IPv4Network(i.address) if isinstance(i, Host) else i for i in items if i != but}
    return tuple(sorted(n for n in nets if not any(n != m and n.subnet_of(m) for m in nets)))


def _flow(
    protocol: str,
    ports: Iterable[int],
    sources: tuple[IPv4Network, ...] | None,
    why: str,
    destinations: Iterable[IPv4Address] = (),
) -> list[Flow]:
    """The flow as a list of one, or none when nobody could send it (no source)."""
    if sources == ():
        return []
    return [Flow(protocol, tuple(sorted(set(ports))), sources, why, tuple(sorted(set(destinations))))]


def galera_peers(topology: Topology, host: Host) -> tuple[IPv4Network, ...]:
    """Every other Galera node and garbd of the site: gcomm is a full mesh of the voters."""
    return _networks(topology.voters, but=host)


def proxies_of(topology: Topology, host: Host, role: str, checking: bool = False) -> tuple[IPv4Network, ...]:
    """The proxies whose rendered HAProxy listeners name `host` as a server of `role` (galera | keystone).

    Each region's listeners list the local hosts and every remote region's as backups
    (`context.write_backends`, `balanced_backends`). `checking`: only servers that run
    health checks of their own (a read-only fallback copies the galera-read server's state).
    """
    out = []
    for proxy in topology.with_role("haproxy"):
        region = topology.region_of(proxy)
        if role == "galera":
            lines = ctx.write_backends(topology, region) + ctx.balanced_backends(topology, region, "galera")
        else:
            lines = ctx.balanced_backends(topology, region, role)
        if any(line.host.name == host.name and not (checking and line.track) for line in lines):
            out.append(proxy)
    return _networks(out, but=host)


def _galera(topology: Topology, host: Host) -> list[Flow]:
    g, fw = host.settings.galera, topology.firewall
    peers = galera_peers(topology, host)
    return [
        *_flow("tcp", (g.port, g.gcomm_port, g.ist_port, g.sst_port), peers, "galera peers: MariaDB, gcomm, IST, SST"),
        *_flow("udp", (g.gcomm_port,), peers, "galera peers: gcomm over UDP"),
        *_flow("tcp", (g.port,), proxies_of(topology, host, "galera"), "haproxy galera-write/galera-read servers"),
        *_flow("tcp", (g.health_port,), proxies_of(topology, host, "galera", checking=True), "haproxy health checks"),
        *_flow("tcp", (g.port, g.health_port), _networks(fw.monitoring), "monitoring: kgt check/probe, health"),
        *_flow("tcp", (g.port,), _networks(fw.admin_networks or ()), "admin networks: kgt_admin"),
    ]


def _garbd(topology: Topology, host: Host) -> list[Flow]:
    port, peers = host.settings.garbd.port, galera_peers(topology, host)
    return [
        *_flow("tcp", (port,), peers, "galera peers: gcomm"),
        *_flow("udp", (port,), peers, "galera peers: gcomm over UDP"),
    ]


def listener_ports(topology: Topology, host: Host) -> tuple[int, ...]:
    """The ports a proxy's listeners bind on its listen addresses (keystone-api only when rendered)."""
    h, region = host.settings.haproxy, topology.region_of(host)
    ports = [h.write_port, h.read_port]
    if ctx.balanced_backends(topology, region, "keystone"):
        ports.append(h.keystone_port)
    return tuple(ports)


def _haproxy(topology: Topology, host: Host) -> list[Flow]:
    h, fw, region = host.settings.haproxy, topology.firewall, topology.region_of(host)
    listen = [IPv4Address(a) for a in ctx.listen_addresses(topology, host)]
    flows = _flow(
        "tcp",
        listener_ports(topology, host),
        _networks([*fw.client_networks, *fw.monitoring]),
        "clients and monitoring: galera and keystone listeners",
        listen,
    )
    # Keystone's [database] connection: its region's first VIP (any proxy may hold it) or first proxy.
    db = IPv4Address(ctx.db_address(region))
    if db in listen:
        keystones = _networks(region.with_role("keystone"), but=host)
        flows += _flow("tcp", (ctx.db_port(region),), keystones, "keystone [database] connection", (db,))
    if fw.admin_networks is None:
        flows += _flow("tcp", (h.stats_port,), None, "haproxy stats: anywhere (no admin_networks)")
    else:
        stats = _networks([*fw.admin_networks, *fw.monitoring])
        flows += _flow("tcp", (h.stats_port,), stats, "haproxy stats: admin networks and monitoring")
    return flows


def vrrp_peers(topology: Topology, host: Host) -> tuple[IPv4Network, ...]:
    """The addresses keepalived's unicast adverts come from: the region's other proxies.

    With a lone proxy keepalived renders no unicast peer and nobody else sends adverts.
    """
    peers = {IPv4Address(p) for i in ctx.vrrp_instances(topology, host) for p in i.peers}
    return _networks(IPv4Network(p) for p in peers)


def _keepalived(topology: Topology, host: Host) -> list[Flow]:
    return _flow("vrrp", (), vrrp_peers(topology, host), "vrrp adverts of the region's other proxies")


def _keystone(topology: Topology, host: Host) -> list[Flow]:
    port, servers = host.settings.keystone.port, proxies_of(topology, host, "keystone")
    return [
        *_flow("tcp", (port,), servers, "haproxy keystone-api servers"),
        *_flow("tcp", (port,), _networks(topology.firewall.monitoring), "monitoring: kgt probe keystone --node"),
    ]


def memcache_clients(topology: Topology, host: Host) -> tuple[IPv4Network, ...]:
    """The Keystone hosts whose [cache] memcache_servers name this host: its region's."""
    me = f"{host.address}:{host.settings.memcached.port}"
    clients = [k for k in topology.with_role("keystone") if me in ctx.memcache_servers(topology.region_of(k))]
    return _networks(clients, but=host)


def _memcached(topology: Topology, host: Host) -> list[Flow]:
    clients = memcache_clients(topology, host)
    return _flow("tcp", (host.settings.memcached.port,), clients, "keystone [cache] of this region")


def _dns(topology: Topology, host: Host) -> list[Flow]:
    fw, port = topology.firewall, host.settings.dns.port
    askers = _networks([*fw.client_networks, *fw.monitoring])
    why = "dns: clients and monitoring"
    return [*_flow("tcp", (port,), askers, why), *_flow("udp", (port,), askers, why)]


def _etcd(topology: Topology, host: Host) -> list[Flow]:
    e, fw = host.settings.etcd, topology.firewall
    members = _networks(topology.with_role("etcd"), but=host)
    flows = [
        *_flow("tcp", (e.peer_port,), members, "etcd peers: raft"),
        *_flow("tcp", (e.client_port,), _networks(topology.hosts, but=host), "etcd clients: every host's kgt agent"),
    ]
    if fw.admin_networks is None:
        return [*flows, *_flow("tcp", (e.client_port,), None, "etcd clients: kgt publish from anywhere")]
    publishers = _networks([*fw.admin_networks, *fw.monitoring])
    why = "etcd clients: kgt publish, rollout (admin, monitoring)"
    return [*flows, *_flow("tcp", (e.client_port,), publishers, why)]


_BY_ROLE = (
    ("galera", _galera),
    ("garbd", _garbd),
    ("haproxy", _haproxy),
    ("keepalived", _keepalived),
    ("keystone", _keystone),
    ("memcached", _memcached),
    ("dns", _dns),
    ("etcd", _etcd),
)


def inbound_flows(topology: Topology, host: Host) -> list[Flow]:
    """Every inbound flow `host` accepts beyond established traffic, loopback and ICMP, role by role, then SSH.

    SSH comes from the admin networks, or anywhere when the topology names none; it is
    left out only when the topology says `ssh: false`.
    """
    flows = [flow for role, flows_of in _BY_ROLE if host.has(role) for flow in flows_of(topology, host)]
    fw = topology.firewall
    if not fw.ssh:
        return flows
    if fw.admin_networks is None:
        return [*flows, *_flow("tcp", (fw.ssh_port,), None, "ssh: anywhere (no admin_networks)")]
    return [*flows, *_flow("tcp", (fw.ssh_port,), _networks(fw.admin_networks), "ssh: admin networks")]


def _address(net: IPv4Network | IPv4Address) -> str:
    if isinstance(net, IPv4Network) and net.prefixlen == 32:
        return str(net.network_address)
    return str(net)


def nft_set(items: Iterable[object]) -> str:
    """One value bare, several as an anonymous set: `22`, `{ 3306, 4567 }`."""
    texts = [_address(i) if isinstance(i, (IPv4Network, IPv4Address)) else str(i) for i in items]
    return texts[0] if len(texts) == 1 else "{ " + ", ".join(texts) + " }"


# The last rule of a keepalived host: VRRP from anyone but its region's proxies is dropped
# by the policy anyway; counting it shows a refused advert (a spoofed or misrouted MASTER).
VRRP_REFUSED = 'ip protocol vrrp counter drop comment "vrrp from anyone else: counted, dropped"'


def closing_rules(host: Host) -> list[str]:
    """Rules after every accepted flow: the counted VRRP drop on keepalived hosts."""
    return [VRRP_REFUSED] if host.has("keepalived") else []


def rule(flow: Flow) -> str:
    """The flow as one rule of kgt's input chain, its reason as the rule's comment."""
    parts = []
    if flow.destinations:
        parts.append(f"ip daddr {nft_set(flow.destinations)}")
    if flow.sources is not None:
        parts.append(f"ip saddr {nft_set(flow.sources)}")
    parts.append("ip protocol vrrp" if flow.protocol == "vrrp" else f"{flow.protocol} dport {nft_set(flow.ports)}")
    parts.append(f'accept comment "{flow.why}"')
    return " ".join(parts)
