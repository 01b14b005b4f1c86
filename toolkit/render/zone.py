"""The DNS zone of the site, built and checked with dnspython.

Names: `<region>`, `keystone.<region>` and `db.<region>` resolve round-robin to the
region's VIPs; `keystone` to every VIP of every region; each host and VIP by its name.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.zone

from toolkit.topology.model import Region, Topology

# The site-wide Keystone name: every VIP of every region.
KEYSTONE = "keystone"


def keystone_name(region: Region) -> str:
    """Relative name of a region's Keystone endpoint (its catalog URL's host)."""
    return f"{KEYSTONE}.{region.name}"


def database_name(region: Region) -> str:
    """Relative name of a region's database endpoint (its proxies' Galera listeners)."""
    return f"db.{region.name}"


def fqdn(topology: Topology, relative: str) -> str:
    """A relative name of the zone in the topology's domain: `db.r1` → `db.r1.kgt.example`."""
    return f"{relative}.{topology.domain}"


def endpoint_names(topology: Topology) -> dict[str, list[str]]:
    """Relative name → addresses of every round-robin endpoint name in the zone."""
    names: dict[str, list[str]] = {}
    for region in topology.regions:
        vips = [str(v.address) for v in region.vips]
        if vips:
            for name in (region.name, keystone_name(region), database_name(region)):
                names[name] = vips
    every = [str(v.address) for v in topology.vips]
    if every:
        names[KEYSTONE] = every
    return names


def records(topology: Topology) -> dict[str, list[str]]:
    """Relative name → A records: endpoint names, hosts and VIPs."""
    out = endpoint_names(topology)
    for host in topology.hosts:
        out.setdefault(host.name, []).append(str(host.address))
    for vip in topology.vips:
        out.setdefault(vip.name, []).append(str(vip.address))
    return out


def nameservers(topology: Topology) -> list[str]:
    """Relative names of the zone's NS records: the hosts with the dns role, else `ns1`."""
    return [h.name for h in topology.with_role("dns")] or ["ns1"]


def _add(
    zone: dns.zone.Zone,
    name: str,
    rdtype: dns.rdatatype.RdataType,
    ttl: int,
    rdatas: Iterable[object],
) -> None:
    rdataset = zone.find_rdataset(name, rdtype, create=True)
    for rdata in rdatas:
        rdataset.add(rdata, ttl)  # type: ignore[arg-type]


def build(topology: Topology) -> str:
    """The zone file text; deterministic, and checked by dnspython before it is returned."""
    origin = dns.name.from_text(topology.domain)
    ttl = topology.hosts[0].settings.dns.ttl
    zone = dns.zone.Zone(origin, relativize=True)
    table = records(topology)
    # The serial is derived from the content so the same topology gives the same file
    # and any change gives a new serial (all servers are rendered from one source).
    content = repr(sorted(table.items())) + repr(nameservers(topology))
    serial = zlib.crc32(content.encode()) % 2**31 or 1
    IN, A = dns.rdataclass.IN, dns.rdatatype.A
    ns1 = dns.name.from_text(nameservers(topology)[0], origin=None)
    soa = dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]  # dnspython is untyped here
        IN,
        dns.rdatatype.SOA,
        ns1,
        dns.name.from_text("hostmaster", origin=None),
        serial,
        3600,
        600,
        86400,
        ttl,
    )
    _add(zone, "@", dns.rdatatype.SOA, ttl, [soa])
    _add(
        zone,
        "@",
        dns.rdatatype.NS,
        ttl,
        [
            dns.rdtypes.ANY.NS.NS(  # type: ignore[no-untyped-call]
                IN, dns.rdatatype.NS, dns.name.from_text(n, origin=None)
            )
            for n in nameservers(topology)
        ],
    )
    for name in sorted(table):
        _add(
            zone,
            name,
            A,
            ttl,
            [
                dns.rdtypes.IN.A.A(IN, A, address)  # type: ignore[no-untyped-call]
                for address in sorted(set(table[name]))
            ],
        )
    zone.check_origin()
    text = zone.to_text(sorted=True, relativize=True)
    header = f"; Rendered by kgt from topology {topology.name}.\n$ORIGIN {topology.domain}.\n$TTL {ttl}\n"
    return header + (text if isinstance(text, str) else text.decode())
