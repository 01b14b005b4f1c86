"""Semantic checks of a type-correct topology: uniqueness, subnets, roles, ports, firewall, quorum shape.

Errors make the topology unusable; warnings name a failure the topology will not survive.
Every finding is located by path and line in the file.

The checks are a declarative table, in the order their findings are reported: each entry
of `SITE_CHECKS` is a small pure function that reads a `Site` and yields problems; its
`regions` runs `REGION_CHECKS` on each region, whose `hosts` and `vips` run `HOST_CHECKS`
and `VIP_CHECKS` on each host and VIP. The quorum shape (`survival`) is judged last, once
there is no error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from toolkit.errors import Problem
from toolkit.topology import etcd, evs, survival
from toolkit.topology.document import HostDoc, RegionDoc, Settings, TopologyDoc, VipDoc
from toolkit.topology.listeners import bindings
from toolkit.topology.loader import LineMap, Loc
from toolkit.topology.model import Topology


def is_host_address(address: IPv4Address, subnet: IPv4Network) -> bool:
    """Whether `address` is usable by a host in `subnet`: not its network or broadcast address.

    A /31 or /32 has no addresses to spare. Checked arithmetically: a set of
    `subnet.hosts()` of a /8 would be 16M objects.
    """
    if address not in subnet:
        return False
    if subnet.num_addresses <= 2:
        return True
    return address not in (subnet.network_address, subnet.broadcast_address)


def _region_host_locs(doc: TopologyDoc) -> Iterator[tuple[Loc, str, IPv4Address]]:
    for ri, region in enumerate(doc.regions):
        for hi, host in enumerate(region.hosts):
            yield ("regions", ri, "hosts", hi), host.name, host.address


@dataclass(frozen=True)
class Site:
    """What every check reads: the document (for locations), the model, the lines, first uses."""

    doc: TopologyDoc
    topology: Topology
    lines: LineMap
    first_name: dict[str, Loc]  # where each host or VIP name is first used, in file order
    first_address: dict[IPv4Address, Loc]

    @classmethod
    def of(cls, doc: TopologyDoc, topology: Topology, lines: LineMap) -> Site:
        """Index the first use of every name and address (hosts, then VIPs, region by region)."""
        names: dict[str, Loc] = {}
        addresses: dict[IPv4Address, Loc] = {}
        for ri, region in enumerate(doc.regions):
            members: list[tuple[str, Sequence[HostDoc | VipDoc]]] = [("hosts", region.hosts), ("vips", region.vips)]
            for key, items in members:
                for i, item in enumerate(items):
                    names.setdefault(item.name, ("regions", ri, key, i, "name"))
                    addresses.setdefault(item.address, ("regions", ri, key, i, "address"))
        return cls(doc, topology, lines, names, addresses)

    def error(self, loc: Loc, message: str) -> Problem:
        """An error located at `loc`."""
        return self.lines.problem(loc, message)

    def warning(self, loc: Loc, message: str) -> Problem:
        """A warning located at `loc`."""
        return self.lines.problem(loc, message, "warning")


Found = Iterator[Problem]


# --- a host or a VIP of a region -------------------------------------------------------------


def unique(site: Site, region: RegionDoc, loc: Loc, item: HostDoc | VipDoc) -> Found:
    """A host's or VIP's name and address are used once across the whole site."""
    used: tuple[tuple[str, str, dict[Any, Loc], object], ...] = (
        ("name", f"name '{item.name}'", site.first_name, item.name),
        ("address", f"address {item.address}", site.first_address, item.address),
    )
    for key, what, first, value in used:
        if first[value] != (*loc, key):
            yield site.error((*loc, key), f"{what} is used twice (first at line {site.lines.line(first[value])})")


def host_in_subnet(site: Site, region: RegionDoc, loc: Loc, host: HostDoc) -> Found:
    """A host's address is a host address of its region's subnet."""
    if not is_host_address(host.address, region.subnet):
        why = f"is not a host address of region '{region.name}' subnet {region.subnet}"
        yield site.error((*loc, "address"), f"address {host.address} {why}")


def vip_in_subnet(site: Site, region: RegionDoc, loc: Loc, vip: VipDoc) -> Found:
    """A VIP is a host address of its region's subnet."""
    if not is_host_address(vip.address, region.subnet):
        yield site.error(
            (*loc, "address"), f"VIP {vip.address} is not inside region '{region.name}' subnet {region.subnet}"
        )


def roles_once(site: Site, region: RegionDoc, loc: Loc, host: HostDoc) -> Found:
    """No role is listed twice."""
    if len(set(host.roles)) != len(host.roles):
        yield site.error((*loc, "roles"), "a role is listed twice")


def roles_together(site: Site, region: RegionDoc, loc: Loc, host: HostDoc) -> Found:
    """keepalived comes with haproxy; a Galera node is not also a garbd."""
    roles = set(host.roles)
    if "keepalived" in roles and "haproxy" not in roles:
        yield site.error(
            (*loc, "roles"), "keepalived without haproxy: keepalived only moves the VIPs of a local HAProxy"
        )
    if "galera" in roles and "garbd" in roles:
        yield site.error((*loc, "roles"), "a host cannot be both a Galera node and a garbd (they share the gcomm port)")


SECTIONS = ("galera", "garbd", "haproxy", "keepalived", "keystone", "memcached", "dns", "etcd")


def ignored_settings(site: Site, region: RegionDoc, loc: Loc, host: HostDoc) -> Found:
    """Settings of a role the host does not hold (a garbd host uses only galera's EVS timeouts)."""
    roles = set(host.roles)
    for section in SECTIONS:
        if section == "galera" and host.galera is not None and "garbd" in roles and "galera" not in roles:
            # garbd takes its EVS timeouts from `galera:`; nothing else there applies to it.
            unused = sorted(set(host.galera.model_dump(exclude_none=True)) - set(evs.STOCK_EVS))
            if unused:
                yield site.warning(
                    (*loc, section),
                    f"galera settings {', '.join(unused)} are ignored on a garbd host (it uses only the EVS timeouts)",
                )
            continue
        if getattr(host, section) is not None and section not in roles:
            yield site.warning(
                (*loc, section), f"settings for role '{section}' on a host without that role are ignored"
            )


HostCheck = Callable[[Site, RegionDoc, Loc, HostDoc], Found]
VipCheck = Callable[[Site, RegionDoc, Loc, VipDoc], Found]
HOST_CHECKS: tuple[HostCheck, ...] = (unique, host_in_subnet, roles_once, roles_together, ignored_settings)
VIP_CHECKS: tuple[VipCheck, ...] = (unique, vip_in_subnet)


# --- a region -----------------------------------------------------------------------------------


def subnet_overlaps(site: Site, ri: int) -> Found:
    """A region's subnet overlaps no earlier region's."""
    region = site.doc.regions[ri]
    for other in site.doc.regions[:ri]:
        if region.subnet.overlaps(other.subnet):
            yield site.error(
                ("regions", ri, "subnet"), f"subnet {region.subnet} overlaps region '{other.name}' ({other.subnet})"
            )


def hosts(site: Site, ri: int) -> Found:
    """Every host check on each host of the region."""
    region = site.doc.regions[ri]
    for hi, host in enumerate(region.hosts):
        for check in HOST_CHECKS:
            yield from check(site, region, ("regions", ri, "hosts", hi), host)


def vips(site: Site, ri: int) -> Found:
    """Every VIP check on each VIP of the region."""
    region = site.doc.regions[ri]
    for vi, vip in enumerate(region.vips):
        for check in VIP_CHECKS:
            yield from check(site, region, ("regions", ri, "vips", vi), vip)


def roles_of_region(site: Site, ri: int) -> Found:
    """Keystone needs a local HAProxy; VIPs need keepalived and keepalived needs VIPs."""
    region, model = site.doc.regions[ri], site.topology.regions[ri]
    if model.with_role("keystone") and not model.with_role("haproxy"):
        yield site.error(
            ("regions", ri, "hosts"),
            f"region '{region.name}' has keystone hosts but no haproxy host to reach the database and serve the API",
        )
    if region.vips and not model.with_role("keepalived"):
        yield site.error(
            ("regions", ri, "vips"), f"region '{region.name}' has VIPs but no keepalived host to hold them"
        )
    if model.with_role("keepalived") and not region.vips:
        yield site.error(("regions", ri, "hosts"), f"region '{region.name}' has keepalived hosts but no vips")


def keepalived_priorities(site: Site, ri: int) -> Found:
    """The region's last proxy still has a VRRP priority of at least 1.

    Priorities fall by 10 per proxy after a VIP's owner (render.context); keepalived
    rejects a priority below 1. Reported once per region.
    """
    proxies = site.topology.regions[ri].with_role("keepalived")
    for proxy in proxies:
        lowest = proxy.settings.keepalived.master_priority - 10 * (len(proxies) - 1)
        if lowest < 1:
            yield site.error(
                ("regions", ri, "hosts"),
                f"keepalived priority of {proxy.name} would fall to {lowest} with {len(proxies)} proxies "
                f"(below 1); raise keepalived.master_priority to at least {10 * (len(proxies) - 1) + 1}",
            )
            return


# The advert intervals keepalived accepts, per VRRP version (seconds, and what to say otherwise).
VRRP_INTERVALS = {  # version: (least, most, step) in seconds, and the rule in words
    2: (1.0, 255.0, 1.0, "a VRRPv2 advert interval is a whole number of seconds from 1 to 255"),
    3: (0.01, 40.95, 0.01, "a VRRPv3 advert interval is 10 ms to 40.95 s"),
}


def vrrp_intervals(site: Site) -> Found:
    """Each proxy's advert interval is one its VRRP version can send (`VRRP_INTERVALS`); once per line."""
    seen: set[Loc] = set()
    for ri, region in enumerate(site.doc.regions):
        for hi, doc_host in enumerate(region.hosts):
            if "keepalived" not in doc_host.roles:
                continue
            ka = site.topology.host(doc_host.name).settings.keepalived
            low, high, step, rule = VRRP_INTERVALS[ka.vrrp_version]
            steps = ka.advert_int / step
            fits = low <= ka.advert_int <= high and abs(steps - round(steps)) < 1e-9
            where = _origin(site.doc, ri, hi, "keepalived", "advert_int")
            if not fits and where not in seen:
                seen.add(where)
                yield site.error(where, f"keepalived.advert_int {ka.advert_int:g}s: {rule}")


RegionCheck = Callable[[Site, int], Found]
REGION_CHECKS: tuple[RegionCheck, ...] = (subnet_overlaps, hosts, vips, roles_of_region, keepalived_priorities)


# --- the whole site ---------------------------------------------------------------------------


def region_names(site: Site) -> Found:
    """Region names are unique."""
    first: dict[str, Loc] = {}
    for ri, region in enumerate(site.doc.regions):
        loc: Loc = ("regions", ri, "name")
        if region.name in first:
            yield site.error(
                loc, f"region name '{region.name}' is used twice (first at line {site.lines.line(first[region.name])})"
            )
        first.setdefault(region.name, loc)


def regions(site: Site) -> Found:
    """Every region check on each region."""
    for ri in range(len(site.doc.regions)):
        for check in REGION_CHECKS:
            yield from check(site, ri)


def port_clashes(site: Site) -> Found:
    """No two of a host's listeners share an address and port."""
    for loc, name, _ in _region_host_locs(site.doc):
        seen: dict[tuple[IPv4Address, int], str] = {}
        for address, port, what in bindings(site.topology, site.topology.host(name)):
            key = (address, port)
            if key in seen and seen[key] != what:
                yield site.error((*loc, "roles"), f"port clash on {address}:{port}: {seen[key]} and {what}")
            seen.setdefault(key, what)


def router_ids(site: Site) -> Found:
    """Every VIP's VRRP router id fits in a byte."""
    vips_ = site.topology.vips
    last = vips_[-1].router_id if vips_ else 0
    if last > 255:
        yield site.error(
            ("regions",),
            f"{len(vips_)} VIPs need VRRP router ids up to {last}, above 255; lower keepalived.router_id_base",
        )


def wan_pairs(site: Site) -> Found:
    """Each WAN pair names two different, known regions."""
    known = list(dict.fromkeys(r.name for r in site.doc.regions))
    for pi, pair in enumerate(site.doc.wan.pairs):
        loc: Loc = ("wan", "pairs", pi, "between")
        for name in pair.between:
            if name not in known:
                yield site.error(loc, f"unknown region '{name}' (regions: {', '.join(known)})")
        if pair.between[0] == pair.between[1]:
            yield site.error(loc, "a pair needs two different regions")


def agreement(site: Site) -> Found:
    """Settings peers must share (see `_agreement_problems`)."""
    yield from _agreement_problems(site.doc, site.topology, site.lines)


def evs_timeouts(site: Site) -> Found:
    """EVS timeouts Galera would refuse or that risk evictions (see `_evs_problems`)."""
    yield from _evs_problems(site.doc, site.topology, site.lines)


def tls_files(site: Site) -> Found:
    """`tls:` names either kgt's own directory or the operator's CA and certificates, whole."""
    tls = site.doc.tls
    if tls is None:
        return
    if tls.dir is not None and (tls.ca is not None or tls.certs is not None):
        yield site.error(("tls", "dir"), "give either dir (kgt runs the CA) or ca and certs (your own CA), not both")
    if tls.create and (tls.ca is not None or tls.certs is not None):
        yield site.error(("tls", "create"), "create makes kgt's own CA: not with ca and certs (your own CA)")
    for key, other in (("ca", "certs"), ("certs", "ca")):
        if getattr(tls, key) is not None and getattr(tls, other) is None:
            yield site.error(("tls", key), f"tls.{key} needs tls.{other} too (your CA and the folder of HOST.crt/.key)")


def firewall(site: Site) -> Found:
    """The `firewall:` section can lock nobody out by accident and opens no service by its SSH rule."""
    fw = site.doc.firewall
    if not fw.enabled:
        # admin_networks and monitoring also name the database accounts' sources (toolkit.accounts).
        unused = sorted(fw.model_fields_set - {"enabled", "admin_networks", "monitoring"})
        if unused:
            yield site.warning(("firewall",), f"firewall settings {', '.join(unused)} are ignored: enabled is false")
        return
    if fw.client_networks == []:
        yield site.error(
            ("firewall", "client_networks"),
            "an empty list lets no client reach the VIPs or DNS; leave it out for every region subnet",
        )
    if fw.ssh and fw.admin_networks == []:
        yield site.error(
            ("firewall", "admin_networks"),
            "an empty list shuts SSH out from everywhere; leave it out for anywhere, or write ssh: false to close SSH",
        )
    if fw.ssh:
        for host in site.topology.hosts:
            clash = next((what for _, port, what in bindings(site.topology, host) if port == fw.ssh_port), None)
            if clash:
                yield site.error(
                    ("firewall", "ssh_port"),
                    f"ssh_port {fw.ssh_port} is also the {clash} port on {host.name}: the SSH rule would open it "
                    "to the admin networks",
                )
                return


def etcd_cluster(site: Site) -> Found:
    """etcd's members and timings (`toolkit.topology.etcd.located_problems`)."""
    yield from etcd.located_problems(site.doc, site.topology, site.lines)


SiteCheck = Callable[[Site], Found]
# In the order the problems are reported.
SITE_CHECKS: tuple[SiteCheck, ...] = (
    region_names,
    regions,
    port_clashes,
    router_ids,
    wan_pairs,
    tls_files,
    agreement,
    vrrp_intervals,
    evs_timeouts,
    firewall,
    etcd_cluster,
)


def check(doc: TopologyDoc, topology: Topology, lines: LineMap) -> list[Problem]:
    """Every semantic error and warning of the topology; the quorum shape once there is no error."""
    site = Site.of(doc, topology, lines)
    problems = [problem for check in SITE_CHECKS for problem in check(site)]
    if not topology.voters:
        problems.append(site.error(("regions",), "no host has the galera role: there is no cluster"))
    elif not any(p.severity == "error" for p in problems):
        problems += survival.quorum_warnings(topology, lines)
        problems += survival.promise_problems(topology, lines)
    return problems


def _origin(doc: TopologyDoc, ri: int, hi: int, section: str, key: str) -> Loc:
    """Where host `hi` of region `ri` gets `section.key` from: itself, its region, the site defaults."""
    layers: list[tuple[Settings | None, Loc]] = [
        (doc.regions[ri].hosts[hi], ("regions", ri, "hosts", hi, section, key)),
        (doc.regions[ri].settings, ("regions", ri, "settings", section, key)),
        (doc.defaults, ("defaults", section, key)),
    ]
    for layer, loc in layers:
        part = getattr(layer, section, None) if layer is not None else None
        if part is not None and getattr(part, key, None) is not None:
            return loc
    return ("regions", ri, "hosts", hi)


def _host_index(doc: TopologyDoc) -> dict[str, tuple[int, int]]:
    return {h.name: (ri, hi) for ri, r in enumerate(doc.regions) for hi, h in enumerate(r.hosts)}


def _agreement_problems(doc: TopologyDoc, topology: Topology, lines: LineMap) -> list[Problem]:
    """Settings that peers must share: VRRP timing and priorities in a region, router ids site-wide."""
    where = _host_index(doc)
    out: list[Problem] = []
    # The model numbers every VIP from one base; a per-region or per-host value would be ignored.
    for ri, rdoc in enumerate(doc.regions):
        layers: list[tuple[Settings | None, Loc]] = [(rdoc.settings, ("regions", ri, "settings"))]
        layers += [(h, ("regions", ri, "hosts", hi)) for hi, h in enumerate(rdoc.hosts)]
        for layer, loc in layers:
            if layer is not None and layer.keepalived is not None and layer.keepalived.router_id_base is not None:
                out.append(
                    lines.problem(
                        (*loc, "keepalived", "router_id_base"),
                        "keepalived.router_id_base is site-wide (VRRP ids are numbered across the whole site): "
                        "set it under defaults",
                    )
                )
    for region in topology.regions:
        proxies = region.with_role("keepalived")
        if not proxies:
            continue
        first = proxies[0]
        for key, why in (
            ("vrrp_version", "a VRRPv2 and a VRRPv3 router do not understand each other's adverts"),
            ("advert_int", "VRRP drops adverts with another interval, so both proxies would hold the VIP"),
            ("master_priority", "the failover order of the region's VIPs is computed from one top priority"),
        ):
            want = getattr(first.settings.keepalived, key)
            for proxy in proxies[1:]:
                got = getattr(proxy.settings.keepalived, key)
                if got != want:
                    ri, hi = where[proxy.name]
                    out.append(
                        lines.problem(
                            _origin(doc, ri, hi, "keepalived", key),
                            f"keepalived.{key} of {proxy.name} ({got:g}) differs from {first.name} ({want:g}) "
                            f"in region '{region.name}': {why}",
                        )
                    )
    return out


def _evs_problems(doc: TopologyDoc, topology: Topology, lines: LineMap) -> list[Problem]:
    """EVS timeouts Galera would refuse, or that risk evicting healthy nodes; each reported once."""
    where = _host_index(doc)
    seen: set[tuple[int | None, str]] = set()
    out: list[Problem] = []
    for host in topology.hosts:
        if not (host.has("galera") or host.has("garbd")):
            continue
        ri, hi = where[host.name]
        host_loc: Loc = ("regions", ri, "hosts", hi)
        for found in evs.problems(topology, host):
            # Point at the first involved setting the file sets (a derived value has no line).
            locs = [_origin(doc, ri, hi, "galera", key) for key in found.keys]
            loc = next((loc for loc in locs if loc != host_loc), host_loc)
            problem = lines.problem(loc, found.message, found.severity)
            if (problem.line, problem.message) not in seen:
                seen.add((problem.line, problem.message))
                out.append(problem)
    return out
