"""The site's etcd cluster: its members, its fixed majority, and WAN timings from the RTT hints.

etcd's rule is not Galera's: a member set is fixed at bootstrap, and a side of a partition
keeps serving writes (and linearizable reads, leases, locks) only while it holds more than
half of *all* members, however the failures came one after another. So a region loss is
survived when the other regions hold a majority of the members.

Timings follow etcd's tuning guide: the heartbeat interval about the worst round trip
between members (never below etcd's 100 ms default), the election timeout at least ten
times that (never below its 1 s default); etcd itself refuses an election timeout under
five heartbeats or above 50 s.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit import tlsfiles
from toolkit.errors import Problem
from toolkit.topology.document import Settings, TopologyDoc
from toolkit.topology.loader import LineMap, Loc
from toolkit.topology.model import Host, Topology

DEFAULT_HEARTBEAT = 0.1  # s: etcd's own default heartbeat-interval
DEFAULT_ELECTION = 1.0  # s: etcd's own default election-timeout
ELECTION_PER_HEARTBEAT = 10  # the tuning guide's "at least 10 × the RTT"
ETCD_LEAST_RATIO = 5  # etcd refuses an election timeout under 5 heartbeats
ETCD_MOST_ELECTION = 50.0  # s: etcd refuses more


@dataclass(frozen=True)
class Timings:
    """heartbeat-interval and election-timeout, in seconds."""

    heartbeat: float
    election: float

    @property
    def heartbeat_ms(self) -> int:
        """heartbeat-interval as etcd's config file writes it."""
        return round(self.heartbeat * 1000)

    @property
    def election_ms(self) -> int:
        """election-timeout as etcd's config file writes it."""
        return round(self.election * 1000)


def members(topology: Topology) -> tuple[Host, ...]:
    """The etcd members, in file order."""
    return topology.with_role("etcd")


def client_urls(topology: Topology) -> tuple[str, ...]:
    """Every member's client URL (https on a TLS site): what agents, `kgt publish` and `kgt rollout` dial."""
    scheme = tlsfiles.scheme(topology.tls_on)
    return tuple(f"{scheme}://{h.address}:{h.settings.etcd.client_port}" for h in members(topology))


def majority(size: int) -> int:
    """How many members a side needs to keep etcd serving: more than half of all."""
    return size // 2 + 1


def has_majority(size: int, up: int) -> bool:
    """Whether `up` of `size` members are a majority."""
    return size > 0 and up >= majority(size)


def worst_member_rtt(topology: Topology) -> float:
    """The largest expected round trip between two members' regions (0 with one region)."""
    regions = sorted({h.region for h in members(topology)})
    return max((topology.rtt(a, b) for a in regions for b in regions), default=0.0)


def timings(topology: Topology) -> Timings:
    """The cluster's timings: the settings where given (site-wide), else derived from the RTT."""
    cluster = members(topology)
    given = cluster[0].settings.etcd if cluster else None
    heartbeat = given.heartbeat if given and given.heartbeat is not None else None
    if heartbeat is None:
        heartbeat = max(DEFAULT_HEARTBEAT, round(worst_member_rtt(topology), 3))
    election = given.election_timeout if given and given.election_timeout is not None else None
    if election is None:
        election = max(DEFAULT_ELECTION, ELECTION_PER_HEARTBEAT * heartbeat)
    return Timings(heartbeat, election)


def fatal_region_losses(topology: Topology) -> list[str]:
    """The regions whose loss leaves the other regions without an etcd majority."""
    cluster = members(topology)
    out = []
    for region in topology.regions:
        left = sum(1 for h in cluster if h.region != region.name)
        if not has_majority(len(cluster), left):
            out.append(region.name)
    return out


def problems(topology: Topology) -> list[tuple[str, str, str]]:
    """(severity, key, message) of an etcd cluster etcd would refuse, or that a region loss stops.

    `key` is the setting involved ('' for the member list): the caller locates it in the file.
    """
    cluster = members(topology)
    if not cluster:
        return []
    out: list[tuple[str, str, str]] = []
    if len(cluster) % 2 == 0:
        out.append(
            (
                "warning",
                "",
                f"{len(cluster)} etcd members: use an odd number (an even one tolerates no more failures "
                f"than {len(cluster) - 1} and splits into two halves with no majority)",
            )
        )
    t = timings(topology)
    if t.election > ETCD_MOST_ELECTION:
        out.append(("error", "election_timeout", f"etcd election_timeout {t.election:g}s: etcd refuses more than 50s"))
    if t.election < ETCD_LEAST_RATIO * t.heartbeat:
        out.append(
            (
                "error",
                "election_timeout",
                f"etcd election_timeout {t.election:g}s is under 5 heartbeats ({t.heartbeat:g}s each): etcd refuses it",
            )
        )
    elif t.election < ELECTION_PER_HEARTBEAT * worst_member_rtt(topology):
        out.append(
            (
                "warning",
                "election_timeout",
                f"etcd election_timeout {t.election:g}s is under 10 × the worst RTT between members "
                f"({worst_member_rtt(topology):g}s): a slow round trip starts an election",
            )
        )
    if len(cluster) % 2 and len(topology.regions) > 1:
        for region in fatal_region_losses(topology):
            out.append(
                (
                    "warning",
                    "",
                    f"losing region '{region}' leaves etcd without a majority ({len(cluster)} members, "
                    f"{sum(1 for h in cluster if h.region == region)} in '{region}'): no publish, no coordinated "
                    "restart anywhere until it returns; spread the members so no region holds half",
                )
            )
    return out


def located_problems(doc: TopologyDoc, topology: Topology, lines: LineMap) -> list[Problem]:
    """`problems`, each at its line; and timings set anywhere but `defaults` (they are site-wide)."""
    out = []
    for ri, rdoc in enumerate(doc.regions):
        layers: list[tuple[Settings | None, Loc]] = [(rdoc.settings, ("regions", ri, "settings"))]
        layers += [(h, ("regions", ri, "hosts", hi)) for hi, h in enumerate(rdoc.hosts)]
        for layer, loc in layers:
            for key in ("heartbeat", "election_timeout"):
                if layer is not None and layer.etcd is not None and getattr(layer.etcd, key) is not None:
                    message = f"etcd.{key} is site-wide (every member must use the same): set it under defaults"
                    out.append(lines.problem((*loc, "etcd", key), message))
    given = doc.defaults.etcd if doc.defaults is not None else None
    for severity, key, message in problems(topology):
        where: Loc = ("defaults", "etcd", key) if key and getattr(given, key, None) is not None else ("regions",)
        out.append(lines.problem(where, message, severity))
    return out
