"""Semantic checks of a type-correct topology: uniqueness, subnets, roles, ports, quorum shape.

Errors make the topology unusable; warnings name a failure the topology will not survive.
Every finding is located by path and line in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

from toolkit.errors import Problem
from toolkit.topology import evs
from toolkit.topology.document import Settings, TopologyDoc
from toolkit.topology.loader import LineMap, Loc
from toolkit.topology.model import Host, Topology
from toolkit.wsrep import is_primary


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
    return out


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


def check(doc: TopologyDoc, topology: Topology, lines: LineMap) -> list[Problem]:
    """Every semantic error and warning of the topology."""
    problems: list[Problem] = []

    def err(loc: Loc, message: str) -> None:
        problems.append(lines.problem(loc, message))

    def warn(loc: Loc, message: str) -> None:
        problems.append(lines.problem(loc, message, "warning"))

    # Names and addresses are unique across the whole site.
    seen_regions: dict[str, Loc] = {}
    for ri, region in enumerate(doc.regions):
        loc: Loc = ("regions", ri, "name")
        if region.name in seen_regions:
            err(
                loc,
                f"region name '{region.name}' is used twice (first at line {lines.line(seen_regions[region.name])})",
            )
        seen_regions.setdefault(region.name, loc)
    names: dict[str, Loc] = {}
    addresses: dict[IPv4Address, Loc] = {}

    def claim_name(loc: Loc, name: str) -> None:
        if name in names:
            err(
                (*loc, "name"),
                f"name '{name}' is used twice (first at line {lines.line(names[name])})",
            )
        names.setdefault(name, (*loc, "name"))

    def claim_address(loc: Loc, address: IPv4Address) -> None:
        if address in addresses:
            err(
                (*loc, "address"),
                f"address {address} is used twice (first at line {lines.line(addresses[address])})",
            )
        addresses.setdefault(address, (*loc, "address"))

    for ri, region in enumerate(doc.regions):
        rloc: Loc = ("regions", ri)
        for other in doc.regions[:ri]:
            if region.subnet.overlaps(other.subnet):
                err(
                    (*rloc, "subnet"),
                    f"subnet {region.subnet} overlaps region '{other.name}' ({other.subnet})",
                )
        for hi, host in enumerate(region.hosts):
            hloc = (*rloc, "hosts", hi)
            claim_name(hloc, host.name)
            claim_address(hloc, host.address)
            if not is_host_address(host.address, region.subnet):
                err(
                    (*hloc, "address"),
                    f"address {host.address} is not a host address of region '{region.name}' subnet {region.subnet}",
                )
            if len(set(host.roles)) != len(host.roles):
                err((*hloc, "roles"), "a role is listed twice")
            roles = set(host.roles)
            if "keepalived" in roles and "haproxy" not in roles:
                err(
                    (*hloc, "roles"),
                    "keepalived without haproxy: keepalived only moves the VIPs of a local HAProxy",
                )
            if "galera" in roles and "garbd" in roles:
                err(
                    (*hloc, "roles"),
                    "a host cannot be both a Galera node and a garbd (they share the gcomm port)",
                )
            for section in (
                "galera",
                "garbd",
                "haproxy",
                "keepalived",
                "keystone",
                "memcached",
                "dns",
            ):
                if section == "galera" and host.galera is not None and "garbd" in roles and "galera" not in roles:
                    # garbd takes its EVS timeouts from `galera:`; nothing else there applies to it.
                    unused = sorted(set(host.galera.model_dump(exclude_none=True)) - set(evs.STOCK_EVS))
                    if unused:
                        warn(
                            (*hloc, section),
                            f"galera settings {', '.join(unused)} are ignored on a garbd host "
                            "(it uses only the EVS timeouts)",
                        )
                    continue
                if getattr(host, section) is not None and section not in roles:
                    warn(
                        (*hloc, section),
                        f"settings for role '{section}' on a host without that role are ignored",
                    )
        for vi, vip in enumerate(region.vips):
            vloc = (*rloc, "vips", vi)
            claim_name(vloc, vip.name)
            claim_address(vloc, vip.address)
            if not is_host_address(vip.address, region.subnet):
                err(
                    (*vloc, "address"),
                    f"VIP {vip.address} is not inside region '{region.name}' subnet {region.subnet}",
                )
        rmodel = topology.regions[ri]
        if rmodel.with_role("keystone") and not rmodel.with_role("haproxy"):
            err(
                (*rloc, "hosts"),
                f"region '{region.name}' has keystone hosts but no haproxy host "
                "to reach the database and serve the API",
            )
        if region.vips and not rmodel.with_role("keepalived"):
            err(
                (*rloc, "vips"),
                f"region '{region.name}' has VIPs but no keepalived host to hold them",
            )
        if rmodel.with_role("keepalived") and not region.vips:
            err(
                (*rloc, "hosts"),
                f"region '{region.name}' has keepalived hosts but no vips",
            )
        # VRRP priorities fall by 10 per proxy after a VIP's owner (render.context); keepalived
        # rejects a priority below 1, so the last proxy must still have one.
        proxies = rmodel.with_role("keepalived")
        for proxy in proxies:
            top = proxy.settings.keepalived.master_priority
            lowest = top - 10 * (len(proxies) - 1)
            if lowest < 1:
                err(
                    (*rloc, "hosts"),
                    f"keepalived priority of {proxy.name} would fall to {lowest} with {len(proxies)} proxies "
                    f"(below 1); raise keepalived.master_priority to at least {10 * (len(proxies) - 1) + 1}",
                )
                break

    for loc, name, _ in _region_host_locs(doc):
        seen: dict[tuple[IPv4Address, int], str] = {}
        for address, port, what in bindings(topology, topology.host(name)):
            key = (address, port)
            if key in seen and seen[key] != what:
                err(
                    (*loc, "roles"),
                    f"port clash on {address}:{port}: {seen[key]} and {what}",
                )
            seen.setdefault(key, what)

    last_vip = topology.vips[-1].router_id if topology.vips else 0
    if last_vip > 255:
        err(
            ("regions",),
            f"{len(topology.vips)} VIPs need VRRP router ids up to {last_vip}, above 255; "
            "lower keepalived.router_id_base",
        )

    for pi, pair in enumerate(doc.wan.pairs):
        ploc: Loc = ("wan", "pairs", pi, "between")
        for name in pair.between:
            if name not in seen_regions:
                err(
                    ploc,
                    f"unknown region '{name}' (regions: {', '.join(seen_regions)})",
                )
        if pair.between[0] == pair.between[1]:
            err(ploc, "a pair needs two different regions")

    problems += _agreement_problems(doc, topology, lines)
    problems += _evs_problems(doc, topology, lines)

    if not topology.voters:
        err(("regions",), "no host has the galera role: there is no cluster")
    elif not any(p.severity == "error" for p in problems):
        problems += _quorum_warnings(topology, lines)
        problems += _promise_problems(topology, lines)
    return problems


def _promise_problems(topology: Topology, lines: LineMap) -> list[Problem]:
    """`survive:` promises that do not parse, and those the topology does not keep (with a verified fix)."""
    if not topology.survive:
        return []
    # The analysis reads the model this module validates; imported here, once the model is whole.
    from toolkit.analysis import promises
    from toolkit.analysis.model import Layout

    layout = Layout.of(topology)
    out = []
    broken = []
    valid = []
    for i, promise in enumerate(topology.survive):
        try:
            found = promises.check(layout, promise)
        except ValueError as exc:
            out.append(lines.problem(("survive", i), str(exc)))
            continue
        valid.append(promise)
        if found is not None:
            broken.append((i, found))
    if broken:
        fixes = promises.fixes(layout, valid, most=1)
        fix = (
            f"; smallest fix: {fixes[0].describe(layout.regions)}"
            if fixes
            else f"; no fix of up to {promises.MAX_ADDED} added voters or one region's weight keeps it"
        )
        for i, b in broken:
            out.append(
                lines.problem(
                    ("survive", i),
                    f"promise '{b.promise}' not kept: {b.counterexample.name} "
                    f"leaves no Primary component with data{fix}",
                )
            )
    return out


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
            ("advert_int", "VRRPv2 drops adverts with another interval, so both proxies would hold the VIP"),
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


def _quorum_warnings(topology: Topology, lines: LineMap) -> list[Problem]:
    """Warnings for a quorum shape that cannot survive some single failure."""
    out = []
    total = topology.total_weight
    if len(topology.regions) < 3:
        for region in topology.regions:
            if region.weight and not is_primary(total - region.weight, total):
                out.append(
                    lines.problem(
                        ("regions",),
                        f"only {len(topology.regions)} regions: losing region '{region.name}' "
                        f"(weight {region.weight} of {total}) loses Primary everywhere; "
                        "add a third region (a garbd is enough)",
                        "warning",
                    )
                )
    if total % 2 == 0:
        half = half_partition([r.name for r in topology.regions], [r.weight for r in topology.regions], total // 2)
        what = (
            f"a partition between {{{', '.join(sorted(half))}}} and the rest" if half else "a partition into two halves"
        )
        out.append(
            lines.problem(
                ("regions",),
                f"total Galera weight {total} is even: {what} (weight {total // 2} each) loses Primary on both sides",
                "warning",
            )
        )
    return out


def half_partition(names: list[str], weights: list[int], half: int) -> list[str] | None:
    """The regions on the first region's side of an exact-half split, or None if there is none.

    The side holds `names[0]`, weighs exactly `half` and leaves at least one region out;
    among those it is the one with fewest regions, then first in file order, i.e. the
    first that `itertools.combinations` by growing size would find, found by a subset-sum
    table instead of trying all 2^n groups (30 regions would never finish).
    """
    n = len(names)
    # fits[i][k]: bit s is set when k regions of names[i:] can weigh s in total.
    fits = [[0] * (n + 1) for _ in range(n + 1)]
    fits[n][0] = 1
    for i in range(n - 1, -1, -1):
        for k in range(n - i + 1):
            fits[i][k] = fits[i + 1][k] | ((fits[i + 1][k - 1] << weights[i]) if k else 0)
    for size in range(1, n):
        rest = half - weights[0]
        if rest < 0 or not (fits[1][size - 1] >> rest) & 1:
            continue
        group, start, left = [names[0]], 1, size - 1
        while left:
            # The earliest region that still lets the rest of the group reach the weight.
            j = next(
                j for j in range(start, n) if rest >= weights[j] and (fits[j + 1][left - 1] >> (rest - weights[j])) & 1
            )
            group.append(names[j])
            rest, start, left = rest - weights[j], j + 1, left - 1
        return group
    return None
