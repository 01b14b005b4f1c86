"""Galera's quorum over a sequence of steps: which component stays Primary after each, and what every region sees.

A `State` is what the site looks like after some steps: the groups of regions that can
still reach each other, the hosts that are gone (crashed or stopped), and the voters of
the last Primary component (None once no component is Primary: nothing re-forms by
itself without an operator's bootstrap). `apply` takes one step, a set of simultaneous
events: a component of the new view stays Primary when its members from the last Primary
component weigh more than half of that component's weight, less the members that left
gracefully in this step (`toolkit.wsrep.is_primary`). Two steps in turn differ from the same
events at once because the second is judged against the component the first one left.
Connectivity only shrinks within a sequence (no heal), so a non-Primary component never
merges back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from toolkit.analysis.events import Event
from toolkit.analysis.model import Component, EtcdOutcome, Layout, RegionOutcome, Scenario, Voter
from toolkit.topology.etcd import has_majority
from toolkit.wsrep import is_primary

Effect = tuple[frozenset[frozenset[str]], frozenset[str], frozenset[str]]


@dataclass(frozen=True)
class State:
    """The site after some steps.

    The Primary component is named by its group of regions: its members are that group's
    voters still up (by induction: each Primary component is the live part of the last one,
    and groups only split).
    """

    groups: tuple[frozenset[str], ...]
    gone: frozenset[str]
    primary: frozenset[str] | None  # the regions of the Primary component's group; None: no Primary
    lost: frozenset[str] = frozenset()  # regions lost whole (a region loss): in no component any more
    left: frozenset[str] = frozenset()  # hosts of `gone` whose Galera stopped cleanly (maintenance): still up

    @classmethod
    def initial(cls, layout: Layout) -> State:
        """Everything up: one group of every region, every voter in the Primary component."""
        return cls((layout.everywhere,), frozenset(), layout.everywhere)

    def members(self, layout: Layout, group: frozenset[str]) -> list[Voter]:
        """The voters of `group` still up, in file order."""
        return [v for r in layout.regions if r in group for v in layout.voters_by_region[r] if v.host not in self.gone]


def _sum(layout: Layout, what: str, group: frozenset[str]) -> int:
    """The regions' voter weight (`what` = "weight") or data voters ("data") summed over `group`, memoised."""
    key = (what, group)
    found = layout.memo.get(key)
    if found is None:
        by_region = layout.weight_by_region if what == "weight" else layout.data_by_region
        found = layout.memo[key] = sum(by_region[r] for r in group)
    return found


def _weight(layout: Layout, group: frozenset[str], gone: Iterable[str]) -> int:
    """Weight of the voters of `group` not in `gone`."""
    voter = layout.voter
    down = sum(voter[h].weight for h in gone if h in voter and voter[h].region in group)
    return _sum(layout, "weight", group) - down


def _cut(groups: Iterable[frozenset[str]], side: frozenset[str]) -> tuple[frozenset[str], ...]:
    out = []
    for group in groups:
        out += [part for part in (group & side, group - side) if part]
    return tuple(out)


def effect(
    layout: Layout, state: State, events: Iterable[Event]
) -> tuple[tuple[frozenset[str], ...], frozenset[str], frozenset[str]]:
    """What a step does: the groups after it, the hosts it crashes, the voters it stops cleanly."""
    groups = state.groups
    crashed: set[str] = set()
    graceful: set[str] = set()
    for e in events:
        if e.kind == "node-loss":
            crashed.add(e.target)
        elif e.kind == "maintenance":
            graceful.add(e.target)
        elif e.kind == "region-loss":
            crashed.update(layout.hosts_by_region[e.target])
        elif e.kind == "region-isolated":
            groups = _cut(groups, frozenset({e.target}))
        elif e.kind == "split":
            assert e.sides is not None
            groups = _cut(groups, frozenset(e.sides[0]))
    return groups, frozenset(crashed - state.gone), frozenset(graceful - crashed - state.gone)


def effect_key(layout: Layout, events: Iterable[Event]) -> Effect:
    """A step's effect from the healthy site, as a key: two event sets with one key are one scenario."""
    groups, crashed, graceful = effect(layout, State.initial(layout), events)
    return frozenset(groups), crashed, graceful


def apply(layout: Layout, state: State, events: Iterable[Event]) -> State:
    """The state after one step of simultaneous events (see the module docstring)."""
    events = list(events)
    groups, crashed, graceful = effect(layout, state, events)
    gone = state.gone | crashed | graceful
    primary = None
    if state.primary is not None:
        last = state.primary
        voter = layout.voter
        leaving = sum(voter[h].weight for h in graceful if h in voter and voter[h].region in last)
        base = _weight(layout, last, state.gone) - leaving
        for group in groups:
            if group <= last and is_primary(_weight(layout, group, gone), base):
                primary = group
                break
    lost = state.lost | {e.target for e in events if e.kind == "region-loss"}
    # A host stopped cleanly before and crashed now is down for good (`effect` counts it gone already).
    hit = {e.target for e in events if e.kind == "node-loss"}
    hit.update(h for e in events if e.kind == "region-loss" for h in layout.hosts_by_region[e.target])
    return State(groups, gone, primary, frozenset(lost), (state.left - hit) | graceful)


def run(layout: Layout, steps: Iterable[Iterable[Event]]) -> State:
    """The state after every step, in turn, from the healthy site."""
    state = State.initial(layout)
    for step in steps:
        state = apply(layout, state, step)
    return state


def survives(layout: Layout, state: State) -> bool:
    """Whether a Primary component that holds data is left (the site goes on accepting writes)."""
    if state.primary is None:
        return False
    voter = layout.voter
    down = sum(1 for h in state.gone if h in voter and voter[h].data and voter[h].region in state.primary)
    data = _sum(layout, "data", state.primary)
    return data - down > 0  # Primary needs a weight over half of a base ≥ 0: some voter is up


@dataclass(frozen=True)
class Outcome:
    """Steps and the state they leave; the full `Scenario` is built only when asked for (`scenario`)."""

    layout: Layout = field(repr=False, compare=False)
    steps: tuple[tuple[Event, ...], ...]
    state: State

    @property
    def kind(self) -> str:
        """The event's kind; `A+B` for events at once, `A>B` for steps in turn."""
        return ">".join("+".join(e.kind for e in step) for step in self.steps)

    @property
    def name(self) -> str:
        """The event's name; ` + ` joins events at once, ` then ` steps in turn."""
        return " then ".join(" + ".join(e.name for e in step) for step in self.steps)

    @cached_property
    def survives(self) -> bool:
        """Whether a Primary component that holds data is left."""
        return survives(self.layout, self.state)

    @cached_property
    def etcd(self) -> EtcdOutcome | None:
        """Whether etcd keeps a majority after the steps (None without etcd members)."""
        return etcd_outcome(self.layout, self.state)

    @cached_property
    def scenario(self) -> Scenario:
        """Components and what every region sees (a single event keeps its own name and kind)."""
        many = len(self.steps) > 1 or len(self.steps[0]) > 1
        names = tuple(tuple(e.name for e in step) for step in self.steps) if many else ()
        return outcome(self.layout, self.state, self.kind, self.name, names)


def evaluate(layout: Layout, steps: Iterable[Iterable[Event]]) -> Outcome:
    """The outcome of steps taken in turn, each a set of simultaneous events."""
    frozen = tuple(tuple(step) for step in steps)
    return Outcome(layout, frozen, run(layout, frozen))


def outcome(layout: Layout, state: State, kind: str, name: str, steps: tuple[tuple[str, ...], ...] = ()) -> Scenario:
    """The scenario a state stands for: its components and what every region sees."""
    components = []
    regions: dict[str, RegionOutcome] = {}
    for group in state.groups:
        in_group = [r for r in layout.regions if r in group]  # file order, not set order
        members = state.members(layout, group)
        primary = bool(members) and group == state.primary
        data = any(v.data for v in members)
        components.append(
            Component(
                tuple(r for r in in_group if r not in state.lost),
                tuple(v.host for v in members),
                sum(v.weight for v in members),
                primary,
                data,
            )
        )
        for region in in_group:
            regions[region] = _region(layout, state, region, primary, data)
    ordered = {r: regions[r] for r in layout.regions}
    return Scenario(kind, name, tuple(components), ordered, steps, etcd_outcome(layout, state))


def etcd_outcome(layout: Layout, state: State) -> EtcdOutcome | None:
    """Whether a group of regions holds a majority of the etcd members up (None without etcd)."""
    size = len(layout.etcd_members)
    if not size:
        return None
    for group in state.groups:
        down = state.gone - state.left
        up = sum(
            1
            for host, region in layout.etcd_members
            if region in group and region not in state.lost and host not in down
        )
        if has_majority(size, up):
            regions = tuple(r for r in layout.regions if r in group and r not in state.lost)
            return EtcdOutcome(size, True, regions)
    return EtcdOutcome(size, False, ())


def _region(layout: Layout, state: State, region: str, primary: bool, data: bool) -> RegionOutcome:
    alive = any(h not in state.gone for h in layout.hosts_by_region[region])
    # Nothing left, or only garbd (no node holds the data): down.
    db = "down" if not alive or not data else "primary" if primary else "read-only"
    if region not in layout.keystone_regions:
        return RegionOutcome(db, "none")
    # Keystone reaches the database through its region's proxies: none left, no database.
    proxies = (layout.proxies_by_region or {}).get(region)
    if not alive or (proxies and all(p in state.gone for p in proxies)):
        return RegionOutcome(db, "down")
    return RegionOutcome(db, {"primary": "writable", "read-only": "read-only", "down": "down"}[db])
