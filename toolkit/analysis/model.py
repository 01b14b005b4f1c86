"""The analysis' data: voters, components, what a region sees, scenarios, and a topology's layout.

Galera's weighted quorum rule is `toolkit.wsrep.is_primary`: a component stays Primary only with more
than half the weight of the last Primary component (less the weight of members that left
it gracefully). An exact half loses on both sides. garbd votes with its weight like a
node, but holds no data.

etcd, where the topology has members, follows its own rule (`toolkit.topology.etcd`): a side
goes on only with more than half of all members up in it. Maintenance stops a host's Galera
cleanly, not its etcd member (a rolling restart restarts one service).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from toolkit.topology.model import Topology


@dataclass(frozen=True)
class Voter:
    """A host that votes, reduced to what the quorum rule needs."""

    host: str
    region: str
    weight: int
    data: bool = True  # False for garbd, which votes but holds no data


@dataclass(frozen=True)
class Component:
    """A group of surviving hosts that can still talk to each other."""

    regions: tuple[str, ...]
    hosts: tuple[str, ...]
    weight: int
    primary: bool
    data: bool = True  # False when only garbd votes in it: Primary, but nothing to read or write


@dataclass(frozen=True)
class RegionOutcome:
    """What a region sees in a scenario."""

    database: str  # "primary" | "read-only" | "down"
    keystone: str  # "writable" | "read-only" | "down" | "none"


@dataclass(frozen=True)
class EtcdOutcome:
    """Whether etcd keeps a majority, and the regions that can still publish and coordinate through it."""

    members: int
    majority: bool
    regions: tuple[str, ...]  # the regions on the majority's side (none without a majority)

    def to_json(self) -> dict[str, Any]:
        """`{"members", "majority", "regions"}`."""
        return {"members": self.members, "majority": self.majority, "regions": list(self.regions)}


@dataclass(frozen=True)
class Scenario:
    """One failure and its outcome."""

    kind: str  # node-loss | region-loss | region-isolated | split | maintenance; A+B (at once), A>B (in turn)
    name: str
    components: tuple[Component, ...]
    regions: dict[str, RegionOutcome] = field(hash=False)
    steps: tuple[tuple[str, ...], ...] = ()  # combinations and sequences: the event names of each step
    etcd: EtcdOutcome | None = None  # None: the topology has no etcd member

    @property
    def survives(self) -> bool:
        """Whether some component keeps Primary with data (the cluster goes on accepting writes)."""
        return any(c.primary and c.data for c in self.components)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form (`toolkit.analysis.report`)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "components": [
                {"regions": list(c.regions), "hosts": list(c.hosts), "weight": c.weight, "primary": c.primary}
                for c in self.components
            ],
            "survives": self.survives,
            "regions": {r: {"database": o.database, "keystone": o.keystone} for r, o in self.regions.items()},
            **({"steps": [list(step) for step in self.steps]} if self.steps else {}),
            **({"etcd": self.etcd.to_json()} if self.etcd is not None else {}),
        }


@dataclass(frozen=True)
class Layout:
    """The facts of a topology the analysis reads, so fixes can be tried on a copy."""

    regions: tuple[str, ...]
    voters: tuple[Voter, ...]
    keystone_regions: frozenset[str]
    hosts_by_region: dict[str, tuple[str, ...]] = field(hash=False)
    # The proxies Keystone reaches the database through; None: not modelled (every host counts).
    proxies_by_region: dict[str, tuple[str, ...]] | None = field(default=None, hash=False)
    etcd_members: tuple[tuple[str, str], ...] = ()  # (host, region) of each etcd member

    @classmethod
    def of(cls, topology: Topology) -> Layout:
        """The layout of a topology."""
        return cls(
            regions=tuple(r.name for r in topology.regions),
            voters=tuple(Voter(h.name, h.region, h.weight, h.has("galera")) for h in topology.voters),
            keystone_regions=frozenset(r.name for r in topology.regions if r.with_role("keystone")),
            hosts_by_region={r.name: tuple(h.name for h in r.hosts) for r in topology.regions},
            proxies_by_region={r.name: tuple(h.name for h in r.with_role("haproxy")) for r in topology.regions},
            etcd_members=tuple((h.name, h.region) for h in topology.with_role("etcd")),
        )

    @cached_property
    def total_weight(self) -> int:
        """Sum of every voter's weight."""
        return sum(v.weight for v in self.voters)

    def region_weight(self, region: str) -> int:
        """Weight of one region's voters."""
        return sum(v.weight for v in self.voters if v.region == region)

    @cached_property
    def memo(self) -> dict[object, int]:
        """Sums the analysis derives from this layout, kept by key (groups repeat across scenarios)."""
        return {}

    @cached_property
    def everywhere(self) -> frozenset[str]:
        """Every region."""
        return frozenset(self.regions)

    @cached_property
    def voter(self) -> dict[str, Voter]:
        """Voters by host name."""
        return {v.host: v for v in self.voters}

    @cached_property
    def weight_by_region(self) -> dict[str, int]:
        """Each region's voter weight."""
        return {r: sum(v.weight for v in vs) for r, vs in self.voters_by_region.items()}

    @cached_property
    def data_by_region(self) -> dict[str, int]:
        """How many voters of each region hold data (Galera nodes, not garbd)."""
        return {r: sum(1 for v in vs if v.data) for r, vs in self.voters_by_region.items()}

    @cached_property
    def voters_by_region(self) -> dict[str, tuple[Voter, ...]]:
        """Each region's voters, in file order."""
        return {r: tuple(v for v in self.voters if v.region == r) for r in self.regions}

    @cached_property
    def voting_hosts(self) -> dict[str, bool]:
        """Every host name → whether it votes."""
        return {h: h in self.voter for hosts in self.hosts_by_region.values() for h in hosts}
