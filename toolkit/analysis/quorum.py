"""Survivability: which failures a topology survives under Galera's weighted quorum rule.

After a failure the voters fall into components; a component stays Primary only if its
weight is more than half the weight of the last Primary component (the whole cluster
here). An exact half loses on both sides. garbd votes with its weight like a node.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

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
class Scenario:
    """One failure and its outcome."""

    kind: str  # node-loss | region-loss | region-isolated | split
    name: str
    components: tuple[Component, ...]
    regions: dict[str, RegionOutcome] = field(hash=False)

    @property
    def survives(self) -> bool:
        """Whether some component keeps Primary with data (the cluster goes on accepting writes)."""
        return any(c.primary and c.data for c in self.components)


def is_primary(weight: int, previous: int) -> bool:
    """Galera's rule: strictly more than half of the last Primary component's weight."""
    return 2 * weight > previous


@dataclass(frozen=True)
class Layout:
    """The facts of a topology the analysis reads, so fixes can be tried on a copy."""

    regions: tuple[str, ...]
    voters: tuple[Voter, ...]
    keystone_regions: frozenset[str]
    hosts_by_region: dict[str, tuple[str, ...]] = field(hash=False)
    # The proxies Keystone reaches the database through; None: not modelled (every host counts).
    proxies_by_region: dict[str, tuple[str, ...]] | None = field(default=None, hash=False)

    @classmethod
    def of(cls, topology: Topology) -> Layout:
        """The layout of a topology."""
        return cls(
            regions=tuple(r.name for r in topology.regions),
            voters=tuple(
                Voter(h.name, h.region, h.weight, h.has("galera"))
                for h in topology.voters
            ),
            keystone_regions=frozenset(
                r.name for r in topology.regions if r.with_role("keystone")
            ),
            hosts_by_region={
                r.name: tuple(h.name for h in r.hosts) for r in topology.regions
            },
            proxies_by_region={
                r.name: tuple(h.name for h in r.with_role("haproxy")) for r in topology.regions
            },
        )

    @property
    def total_weight(self) -> int:
        """Sum of every voter's weight."""
        return sum(v.weight for v in self.voters)

    def region_weight(self, region: str) -> int:
        """Weight of one region's voters."""
        return sum(v.weight for v in self.voters if v.region == region)


def _scenario(
    layout: Layout, kind: str, name: str, groups: list[set[str]], lost_hosts: set[str]
) -> Scenario:
    """Build a scenario from the groups of regions that can still reach each other."""
    total = layout.total_weight
    components = []
    state: dict[str, RegionOutcome] = {}
    for group in groups:
        members = [
            v for v in layout.voters if v.region in group and v.host not in lost_hosts
        ]
        weight = sum(v.weight for v in members)
        primary = is_primary(weight, total)
        data = any(m.data for m in members)
        components.append(
            Component(
                tuple(r for r in layout.regions if r in group),
                tuple(v.host for v in members),
                weight,
                primary,
                data,
            )
        )
        for region in (r for r in layout.regions if r in group):  # file order, not set order
            alive = [h for h in layout.hosts_by_region[region] if h not in lost_hosts]
            if not alive or not data:
                db = "down"  # nothing left, or only garbd: no node holds the data
            elif primary:
                db = "primary"
            else:
                db = "read-only"
            # Keystone reaches the database through its region's proxies: none left, no database.
            proxies = (layout.proxies_by_region or {}).get(region)
            path_lost = proxies is not None and bool(proxies) and all(p in lost_hosts for p in proxies)
            if region not in layout.keystone_regions:
                ks = "none"
            elif not alive or path_lost:
                ks = "down"
            else:
                ks = {"primary": "writable", "read-only": "read-only", "down": "down"}[
                    db
                ]
            state[region] = RegionOutcome(db, ks)
    # A region in no group was lost whole; report it as down rather than leave it out.
    lost = RegionOutcome("down", "down")
    regions = {
        r: state.get(r, lost if r in layout.keystone_regions else RegionOutcome("down", "none"))
        for r in layout.regions
    }
    return Scenario(kind, name, tuple(components), regions)


def scenarios(layout: Layout, splits: bool = True) -> list[Scenario]:
    """Every single-node loss, region loss, region isolation and (4+ regions) split."""
    everything = set(layout.regions)
    out = []
    for voter in layout.voters:
        out.append(
            _scenario(
                layout, "node-loss", f"lose {voter.host}", [everything], {voter.host}
            )
        )
    for region in layout.regions:
        lost = set(layout.hosts_by_region[region])
        out.append(
            _scenario(
                layout,
                "region-loss",
                f"lose region {region}",
                [everything - {region}] if len(everything) > 1 else [set()],
                lost,
            )
        )
    if len(layout.regions) > 1:
        for region in layout.regions:
            out.append(
                _scenario(
                    layout,
                    "region-isolated",
                    f"isolate region {region}",
                    [{region}, everything - {region}],
                    set(),
                )
            )
    if splits and 4 <= len(layout.regions) <= MAX_SPLIT_REGIONS:
        first, rest = layout.regions[0], layout.regions[1:]
        for size in range(1, len(rest)):
            for combo in itertools.combinations(rest, size):
                side = {first, *combo}
                other = everything - side
                if len(side) < 2 or len(other) < 2:
                    continue  # single regions are covered by isolation
                name = f"split {{{','.join(sorted(side))}}} | {{{','.join(sorted(other))}}}"
                out.append(_scenario(layout, "split", name, [side, other], set()))
    return out


def region_failures_survived(layout: Layout) -> bool:
    """Whether every single region loss and isolation keeps a Primary component."""
    return all(
        s.survives
        for s in scenarios(layout, splits=False)
        if s.kind in ("region-loss", "region-isolated")
    )


def suggest_fixes(layout: Layout) -> list[str]:
    """The smallest changes (checked by re-running the analysis) that survive any one region's loss."""
    if region_failures_survived(layout) or not layout.voters:
        return []
    fixes = []
    total = layout.total_weight
    voterless = [r for r in layout.regions if layout.region_weight(r) == 0]
    # 1. A garbd: in a region that has no voter yet, else in a new third region.
    target = voterless[0] if voterless else "kgt-arbiter"
    regions = layout.regions if voterless else (*layout.regions, target)
    hosts = {
        **layout.hosts_by_region,
        target: (*layout.hosts_by_region.get(target, ()), "garbd"),
    }
    for weight in range(1, total + 1):
        voters = (*layout.voters, Voter("garbd", target, weight, data=False))
        if region_failures_survived(
            Layout(regions, voters, layout.keystone_regions, hosts)
        ):
            where = (
                f"region '{target}'"
                if voterless
                else "a third site (one small VM is enough)"
            )
            fixes.append(f"add a garbd with weight {weight} in {where}")
            break
    # 2. A weight change: lower the heaviest region until no region holds half the weight.
    heavy = max(layout.regions, key=layout.region_weight)
    nodes = [v for v in layout.voters if v.region == heavy]
    for new_weight in range(max(v.weight for v in nodes) - 1, -1, -1):
        trial = Layout(
            layout.regions,
            tuple(
                Voter(v.host, v.region, new_weight if v.region == heavy else v.weight)
                for v in layout.voters
            ),
            layout.keystone_regions,
            layout.hosts_by_region,
        )
        if trial.total_weight and region_failures_survived(trial):
            fixes.append(
                f"set pc.weight {new_weight} on region {heavy}'s nodes ({', '.join(v.host for v in nodes)})"
            )
            break
    return fixes


# Two-group splits grow as 2^(regions-1); past this many regions they are not enumerated.
MAX_SPLIT_REGIONS = 12


@dataclass(frozen=True)
class Analysis:
    """The full survivability report of a topology."""

    total_weight: int
    scenarios: tuple[Scenario, ...]
    fixes: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The documented JSON form (see `kgt analyze --help`)."""
        return {
            "total_weight": self.total_weight,
            "scenarios": [
                {
                    "kind": s.kind,
                    "name": s.name,
                    "components": [
                        {
                            "regions": list(c.regions),
                            "hosts": list(c.hosts),
                            "weight": c.weight,
                            "primary": c.primary,
                        }
                        for c in s.components
                    ],
                    "survives": s.survives,
                    "regions": {
                        r: {"database": o.database, "keystone": o.keystone}
                        for r, o in s.regions.items()
                    },
                }
                for s in self.scenarios
            ],
            "fixes": list(self.fixes),
            "notes": list(self.notes),
        }


def analyze(topology: Topology) -> Analysis:
    """Analyse a topology."""
    layout = Layout.of(topology)
    notes: tuple[str, ...] = ()
    if len(layout.regions) > MAX_SPLIT_REGIONS:
        notes = (f"{len(layout.regions)} regions: two-group splits were not enumerated "
                 f"(more than {MAX_SPLIT_REGIONS} regions); node and region losses and isolations were",)
    return Analysis(layout.total_weight, tuple(scenarios(layout)), tuple(suggest_fixes(layout)), notes)
