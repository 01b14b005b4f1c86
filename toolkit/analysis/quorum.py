"""Survivability: which single failures a topology survives under Galera's weighted quorum rule.

After a failure the voters fall into components; a component stays Primary only if its
weight is more than half the weight of the last Primary component (the whole cluster
here). An exact half loses on both sides. garbd votes with its weight like a node. The
rule and its state over several steps are `toolkit.wsrep.is_primary` and `cluster`; combined and
successive failures are `combine`; promises a topology states are `promises`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from toolkit.analysis import cluster, events
from toolkit.analysis.events import Event
from toolkit.analysis.model import Layout, Scenario, Voter
from toolkit.topology.model import Topology


def single_events(layout: Layout, splits: bool = True, maintenance: bool = False) -> list[Event]:
    """Every single failure, in report order: node losses, region losses, isolations, splits (4+ regions).

    With `maintenance`, every voter's clean stop follows (a rolling restart's step).
    """
    everything = layout.regions
    out = [events.node_loss(v.host) for v in layout.voters]
    out += [events.region_loss(r) for r in everything]
    if len(everything) > 1:
        out += [events.isolation(r) for r in everything]
    if splits and 4 <= len(everything) <= MAX_SPLIT_REGIONS:
        first, rest = everything[0], everything[1:]
        for size in range(1, len(rest)):
            for combo in itertools.combinations(rest, size):
                side = (first, *combo)
                if len(side) < 2 or len(everything) - len(side) < 2:
                    continue  # single regions are covered by isolation
                out.append(events.split(side, everything))
    if maintenance:
        out += [events.maintenance(v.host) for v in layout.voters]
    return out


def scenario(layout: Layout, steps: Sequence[Sequence[Event]]) -> Scenario:
    """The outcome of steps taken in turn, each a set of simultaneous events (see `cluster.Outcome`)."""
    return cluster.evaluate(layout, steps).scenario


def scenarios(layout: Layout, splits: bool = True) -> list[Scenario]:
    """Every single-node loss, region loss, region isolation and (4+ regions) split."""
    return [scenario(layout, [[e]]) for e in single_events(layout, splits)]


def region_failures_survived(layout: Layout) -> bool:
    """Whether every single region loss and isolation keeps a Primary component."""
    return all(s.survives for s in scenarios(layout, splits=False) if s.kind in ("region-loss", "region-isolated"))


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
        if region_failures_survived(Layout(regions, voters, layout.keystone_regions, hosts)):
            where = f"region '{target}'" if voterless else "a third site (one small VM is enough)"
            fixes.append(f"add a garbd with weight {weight} in {where}")
            break
    # 2. A weight change: lower the heaviest region until no region holds half the weight.
    heavy = max(layout.regions, key=layout.region_weight)
    nodes = [v for v in layout.voters if v.region == heavy]
    for new_weight in range(max(v.weight for v in nodes) - 1, -1, -1):
        trial = Layout(
            layout.regions,
            tuple(
                Voter(v.host, v.region, new_weight if v.region == heavy else v.weight, v.data) for v in layout.voters
            ),
            layout.keystone_regions,
            layout.hosts_by_region,
        )
        if trial.total_weight and region_failures_survived(trial):
            fixes.append(f"set pc.weight {new_weight} on region {heavy}'s nodes ({', '.join(v.host for v in nodes)})")
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
            "scenarios": [s.to_json() for s in self.scenarios],
            "fixes": list(self.fixes),
            "notes": list(self.notes),
        }


def analyze(topology: Topology) -> Analysis:
    """Analyse a topology."""
    layout = Layout.of(topology)
    notes: tuple[str, ...] = ()
    if len(layout.regions) > MAX_SPLIT_REGIONS:
        notes = (
            f"{len(layout.regions)} regions: two-group splits were not enumerated "
            f"(more than {MAX_SPLIT_REGIONS} regions); node and region losses and isolations were",
        )
    return Analysis(layout.total_weight, tuple(scenarios(layout)), tuple(suggest_fixes(layout)), notes)
