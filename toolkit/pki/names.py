"""The names a host's certificate must carry, computed from the topology (pure, no I/O).

Every host: its name, its FQDN in the topology's domain, its address. A proxy (haproxy
role) also answers on its region's VIPs under the zone's names for them: each VIP's
own name and every endpoint name that resolves to one of them (`<region>`,
`keystone.<region>`, `db.<region>`, the site-wide `keystone`), as `toolkit.render.zone`
publishes them.

A Galera node also carries the name and addresses of every region whose proxies may
hand it a client: HAProxy forwards MySQL in TCP mode, so the TLS handshake a client
starts with `db.<region>` (or the VIP address) ends on the node itself. Its own region's
proxies send clients to it as the writer, every other region's as a `backup`
(`toolkit.render.context.write_backends`); so a client in r1 whose traffic fails over
to r2-db1 still verifies the certificate by the name it dialled, against the site CA.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from toolkit.render import context as ctx
from toolkit.render import zone
from toolkit.topology.model import Host, Region, Topology


@dataclass(frozen=True)
class Names:
    """Subject alternative names: DNS names and IP addresses, each once, in a stable order."""

    dns: tuple[str, ...]
    ips: tuple[IPv4Address, ...]

    def missing_from(self, other: Names) -> list[str]:
        """Those of these names `other` lacks, as text (DNS names first)."""
        return [n for n in self.dns if n not in other.dns] + [str(a) for a in self.ips if a not in other.ips]

    def __str__(self) -> str:
        return ", ".join([*self.dns, *(str(a) for a in self.ips)])


def proxy_names(topology: Topology, region: Region) -> tuple[list[str], list[IPv4Address]]:
    """What a proxy of `region` answers as: its VIPs' names and addresses and the endpoint names on them."""
    vips = {str(v.address) for v in region.vips}
    names = [zone.fqdn(topology, v.name) for v in region.vips]
    names += [zone.fqdn(topology, n) for n, addresses in zone.endpoint_names(topology).items() if vips & set(addresses)]
    return names, [v.address for v in region.vips]


def routed_by(topology: Topology, host: Host) -> list[Region]:
    """The regions whose proxies send MySQL clients to Galera node `host` (as writer, backup or reader)."""
    out = []
    for region in topology.regions:
        if not region.with_role("haproxy"):
            continue
        servers = ctx.write_backends(topology, region) + ctx.balanced_backends(topology, region, "galera")
        if any(s.host.name == host.name for s in servers):
            out.append(region)
    return out


def database_names(topology: Topology, host: Host) -> tuple[list[str], list[IPv4Address]]:
    """The database names and listener addresses under which any region's proxies reach Galera node `host`."""
    names: list[str] = []
    addresses: list[IPv4Address] = []
    for region in routed_by(topology, host):
        names.append(zone.fqdn(topology, zone.database_name(region)))
        proxy = region.with_role("haproxy")[0]
        addresses += [IPv4Address(a) for a in ctx.listen_addresses(topology, proxy)]
    return names, addresses


def subject_alt_names(topology: Topology, host: Host) -> Names:
    """Every name `host`'s certificate must carry (see the module docstring)."""
    dns = [host.name, zone.fqdn(topology, host.name)]
    ips = [host.address]
    if host.has("haproxy"):
        more, addresses = proxy_names(topology, topology.region_of(host))
        dns += more
        ips += addresses
    if host.has("galera"):
        more, addresses = database_names(topology, host)
        dns += more
        ips += addresses
    return Names(tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(ips)))


def common_name(topology: Topology, host: Host) -> str:
    """The subject CN of `host`'s certificate: its FQDN."""
    return zone.fqdn(topology, host.name)
