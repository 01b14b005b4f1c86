"""Computed values the templates print: peer lists, timeouts, backup order, VRRP roles.

Templates stay dumb; every decision about what a config says is made here, in plain
functions over the model, and unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit import haproxy_names, tlsfiles
from toolkit.render import zone
from toolkit.topology.evs import evs_timeouts
from toolkit.topology.model import Host, Region, Topology, Vip


def iso_period(seconds: float) -> str:
    """Seconds as the ISO 8601 period Galera reads: 7.5 → `PT7.5S`, 60 → `PT1M`."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"PT{int(seconds // 60)}M"
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def number(value: float) -> str:
    """A number without a needless fraction: 1.0 → `1`, 0.5 → `0.5`."""
    return f"{value:g}"


def haproxy_time(seconds: float) -> str:
    """Seconds as an HAProxy time: 1 → `1s`, 0.5 → `500ms`."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def gcomm_url(topology: Topology) -> str:
    """`gcomm://` with every Galera node and garbd, region by region."""
    return "gcomm://" + ",".join(h.gcomm_address for h in topology.voters)


def provider_options(topology: Topology, host: Host) -> list[tuple[str, str]]:
    """wsrep_provider_options of a Galera node, in a fixed order."""
    g = host.settings.galera
    region = topology.region(host.region)
    options = [
        ("gmcast.segment", str(region.segment)),
        ("gmcast.listen_addr", f"tcp://{host.address}:{g.gcomm_port}"),
        ("ist.recv_addr", f"{host.address}:{g.ist_port}"),
    ]
    options += [(f"evs.{key}", iso_period(value)) for key, value in evs_timeouts(topology, host).items()]
    options += [
        ("evs.send_window", str(g.send_window)),
        ("evs.user_send_window", str(g.user_window)),
        ("gcache.size", g.gcache_size),
        ("pc.weight", str(g.weight)),
    ]
    return options + socket_ssl(topology, "galera")


def socket_ssl(topology: Topology, role: str) -> list[tuple[str, str]]:
    """Galera's replication and IST over TLS (`socket.ssl_*`) for a galera or garbd host; [] without TLS.

    The AEAD-only cipher list is the version floor too: Galera has no protocol option.
    """
    if not topology.tls_on:
        return []
    d = tlsfiles.BY_ROLE[role]
    return [
        ("socket.ssl_cert", d.cert),
        ("socket.ssl_key", d.key),
        ("socket.ssl_ca", d.ca),
        ("socket.ssl_cipher", tlsfiles.CIPHERS),
    ]


def slave_threads(host: Host) -> int:
    """wsrep_slave_threads: the setting, else one per core."""
    return host.settings.galera.slave_threads or host.settings.cores


def regions_by_distance(topology: Topology, region: Region) -> list[Region]:
    """The other regions, nearest first (expected RTT), file order breaking ties."""
    others = [r for r in topology.regions if r.name != region.name]
    return sorted(others, key=lambda r: (topology.rtt(region.name, r.name), r.index))


@dataclass(frozen=True)
class ServerLine:
    """One server line of an HAProxy backend.

    `track` names the server (`listener/server`) whose health this one copies instead of
    running checks of its own.
    """

    host: Host
    backup: bool
    track: str | None = None

    @property
    def name(self) -> str:
        """The server's name in the listener (a read-only fallback names its node)."""
        return haproxy_names.read_only_server(self.host.name) if self.track else self.host.name


def ordered_backends(topology: Topology, region: Region, role: str) -> list[ServerLine]:
    """Servers for a listener: the first local host active, then local, then remote backups.

    HAProxy sends traffic to the first backup that is up, so this order is the failover
    order: local nodes first, then the nearest region's, and so on.
    """
    local = list(region.with_role(role))
    remote = [h for r in regions_by_distance(topology, region) for h in r.with_role(role)]
    return [ServerLine(h, backup=i > 0) for i, h in enumerate(local + remote)]


def write_backends(topology: Topology, region: Region) -> list[ServerLine]:
    """Servers of the write listener: the failover order of `ordered_backends`, then read-only fallbacks.

    When no node that passes `/write` is reachable (the region is cut off from the Primary
    component), the listener falls back to the read listener's servers, in its order,
    each tracking its state there (`/read`: a non-Primary node that serves dirty reads), so
    Keystone keeps issuing and validating tokens read-only instead of failing every
    request. HAProxy uses the first backup that is up, so a fallback never serves while
    any writer is up, and the local writer's `on-marked-up shutdown-backup-sessions`
    moves every session back once it is Primary again. A write on a fallback fails
    with 1047 (non-Primary): that is read-only mode.
    """
    fallbacks = [
        ServerLine(b.host, backup=True, track=f"{haproxy_names.READ}/{b.host.name}")
        for b in balanced_backends(topology, region, "galera")
    ]
    return ordered_backends(topology, region, "galera") + fallbacks


def balanced_backends(topology: Topology, region: Region, role: str) -> list[ServerLine]:
    """Servers for a balanced listener: every local host active, remote hosts as backups."""
    local = [ServerLine(h, backup=False) for h in region.with_role(role)]
    remote = [ServerLine(h, backup=True) for r in regions_by_distance(topology, region) for h in r.with_role(role)]
    return local + remote


def listen_addresses(topology: Topology, host: Host) -> list[str]:
    """Addresses a proxy's listeners bind: its region's VIPs, else its own address."""
    vips = topology.region(host.region).vips
    return [str(v.address) for v in vips] or [str(host.address)]


@dataclass(frozen=True)
class VrrpInstance:
    """One keepalived vrrp_instance on one proxy."""

    vip: Vip
    state: str  # MASTER | BACKUP
    priority: int
    peers: tuple[str, ...]


def vrrp_instances(topology: Topology, host: Host) -> list[VrrpInstance]:
    """One instance per VIP of the region: MASTER for the VIP it owns, BACKUP for the rest.

    Priorities fall by 10 per step of the rotation after the owner, so the failover
    order of every VIP is the next proxy in file order.
    """
    region = topology.region(host.region)
    proxies = [h.name for h in region.with_role("keepalived")]
    peers = tuple(str(h.address) for h in region.with_role("keepalived") if h.name != host.name)
    top = host.settings.keepalived.master_priority
    out = []
    for vip in region.vips:
        owner = proxies.index(vip.master) if vip.master else 0
        rank = (proxies.index(host.name) - owner) % len(proxies)
        out.append(VrrpInstance(vip, "MASTER" if rank == 0 else "BACKUP", top - 10 * rank, peers))
    return out


def memcache_servers(region: Region) -> list[str]:
    """`address:port` of the region's memcached hosts, for Keystone's cache."""
    return [f"{h.address}:{h.settings.memcached.port}" for h in region.with_role("memcached")]


def db_port(region: Region) -> int:
    """The port a region's Keystone reaches the database on: the write port of its proxies."""
    proxies = region.with_role("haproxy")
    if proxies:
        return proxies[0].settings.haproxy.write_port
    return region.galera_nodes[0].settings.galera.port


def db_address(region: Region) -> str:
    """Where a region's Keystone reaches the database: its first VIP, else its first proxy."""
    if region.vips:
        return str(region.vips[0].address)
    proxies = region.with_role("haproxy")
    return str(proxies[0].address) if proxies else str(region.galera_nodes[0].address)


def database_url(topology: Topology, region: Region) -> str:
    """Keystone's `[database] connection` after `user:password@`: where, which schema, which TLS checks.

    On a TLS site the node's certificate is checked against the site CA and against the
    address dialled (the proxy VIP: every node's certificate carries the listener addresses
    of each region whose proxies may send it clients, `toolkit.pki.names`).
    """
    url = f"{db_address(region)}:{db_port(region)}/keystone"
    if topology.tls_on:
        url += f"?ssl_ca={tlsfiles.BY_ROLE['keystone'].ca}&ssl_check_hostname=true"
    return url


def keystone_url(topology: Topology, region: Region) -> str:
    """The public Keystone endpoint of a region, as published in the catalog (https on a TLS site)."""
    port = region.hosts[0].settings.haproxy.keystone_port
    name = zone.fqdn(topology, zone.keystone_name(region))
    return f"{tlsfiles.scheme(topology.tls_on)}://{name}:{port}/v3"


def vip_keystone_url(topology: Topology, vip: Vip) -> str:
    """Keystone's endpoint on one VIP, by address (its certificate carries it)."""
    port = topology.region(vip.region).hosts[0].settings.haproxy.keystone_port
    return f"{tlsfiles.scheme(topology.tls_on)}://{vip.address}:{port}/v3"
