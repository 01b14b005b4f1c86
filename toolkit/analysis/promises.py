"""Survivability promises a topology states (`survive:`), checked against every instance, with verified fixes.

Grammar of one promise: steps in turn joined by `>`, each step one or more kinds at once
joined by `+`; kinds `node-loss`, `region-loss`, `region-isolated`, `split`, `maintenance`:

    survive: [region-loss, region-loss+node-loss, region-loss>node-loss>node-loss, maintenance+region-loss]

A promise is kept when every instance is survived: every choice of distinct events of
those kinds (`region-loss+node-loss`: any region lost and, at the same moment, any voter
of another region), each step judged after the cluster re-formed from the previous one.
An instance whose extra event changes nothing (a node of a region lost in the same step)
is skipped. The first instance not survived is the counterexample; `fixes` tries the
smallest changes (one or more voters added to a region or in new sites of their own, a
region's weight) and keeps those the re-analysis shows keep every promise.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from toolkit.analysis import cluster
from toolkit.analysis.events import KINDS, Event
from toolkit.analysis.model import Layout, Voter
from toolkit.analysis.quorum import single_events

MAX_INSTANCES = 100_000
_PROMISE = re.compile(r"^\s*[a-z-]+(\s*\+\s*[a-z-]+)*(\s*>\s*[a-z-]+(\s*\+\s*[a-z-]+)*)*\s*$")


def parse(text: str) -> tuple[tuple[str, ...], ...]:
    """A promise's steps, each the kinds it combines; ValueError saying what is wrong."""
    if not _PROMISE.match(text):
        raise ValueError(
            f"'{text}' is not a promise: kinds joined by '+' (at once) and '>' (in turn), "
            "e.g. region-loss+node-loss or region-loss>node-loss"
        )
    steps = tuple(tuple(k.strip() for k in step.split("+")) for step in text.split(">"))
    for step in steps:
        for kind in step:
            if kind not in KINDS:
                raise ValueError(f"'{kind}' is not a failure kind (kinds: {', '.join(KINDS)})")
    return steps


@dataclass(frozen=True)
class Broken:
    """A promise the topology does not keep, and the first instance that shows it."""

    promise: str
    counterexample: cluster.Outcome
    checked: int  # instances checked before it


def _by_kind(layout: Layout) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {k: [] for k in KINDS}
    for e in single_events(layout, maintenance=True):
        out[e.kind].append(e)
    return out


def instances(layout: Layout, steps: Sequence[Sequence[str]]) -> Iterator[tuple[tuple[Event, ...], ...]]:
    """Every instance of a promise: distinct events of the kinds of each step, none that changes nothing."""
    pool = _by_kind(layout)

    def choose(kinds: Sequence[str], used: frozenset[Event]) -> Iterator[tuple[Event, ...]]:
        counts: dict[str, int] = {}
        for kind in kinds:
            counts[kind] = counts.get(kind, 0) + 1
        per_kind = [itertools.combinations([e for e in pool[k] if e not in used], n) for k, n in counts.items()]
        for parts in itertools.product(*(list(p) for p in per_kind)):
            yield tuple(e for part in parts for e in part)

    def walk(
        i: int, done: tuple[tuple[Event, ...], ...], used: frozenset[Event]
    ) -> Iterator[tuple[tuple[Event, ...], ...]]:
        if i == len(steps):
            yield done
            return
        for step in choose(steps[i], used):
            if _idle(layout, done, step):
                continue
            yield from walk(i + 1, (*done, step), used | set(step))

    yield from walk(0, (), frozenset())


def _idle(layout: Layout, done: tuple[tuple[Event, ...], ...], step: tuple[Event, ...]) -> bool:
    """Whether an event of the step changes nothing (its host already gone, or lost in this step too)."""
    before = cluster.run(layout, done)
    whole = cluster.effect(layout, before, step)
    return any(cluster.effect(layout, before, [e for e in step if e != one]) == whole for one in step) or (
        whole == (before.groups, frozenset(), frozenset())
    )


def check(layout: Layout, promise: str, limit: int = MAX_INSTANCES) -> Broken | None:
    """None when every instance of `promise` survives, else the first that does not.

    ValueError for a bad promise, or one with more than `limit` instances.
    """
    steps = parse(promise)
    for n, instance in enumerate(instances(layout, steps)):
        if n >= limit:
            raise ValueError(f"'{promise}' has more than {limit} instances on this topology: too many to check")
        outcome = cluster.evaluate(layout, instance)
        if not outcome.survives:
            return Broken(promise, outcome, n)
    return None


def broken(layout: Layout, promises: Sequence[str]) -> list[Broken]:
    """Every promise not kept, in order."""
    return [b for p in promises if (b := check(layout, p)) is not None]


@dataclass(frozen=True)
class Fix:
    """A change to the topology: voters added (region, role, weight; a region not in the site is a new
    site of its own) and region weights set (every voter of the region)."""

    add: tuple[tuple[str, str, int], ...] = ()
    weights: tuple[tuple[str, int], ...] = ()

    def describe(self, regions: Sequence[str]) -> str:
        """For people: "add 1 Galera node in region r1; add a garbd in 2 new sites of their own"."""
        parts = []
        for region in regions:
            n = sum(1 for r, _, _ in self.add if r == region)
            if n:
                parts.append(f"add {n} Galera node{'s' if n > 1 else ''} in region {region}")
        sites = sum(1 for r, _, _ in self.add if r not in regions)
        if sites:
            parts.append(
                "add a garbd in a new site of its own (one small VM is enough)"
                if sites == 1
                else f"add a garbd in each of {sites} new sites of their own (one small VM each)"
            )
        parts += [f"set pc.weight {w} on region {r}'s voters" for r, w in self.weights]
        return "; ".join(parts)

    def applied(self, layout: Layout) -> Layout:
        """The layout with the fix applied."""
        regions = list(layout.regions)
        voters = [Voter(v.host, v.region, dict(self.weights).get(v.region, v.weight), v.data) for v in layout.voters]
        hosts = {r: list(h) for r, h in layout.hosts_by_region.items()}
        for i, (region, role, weight) in enumerate(self.add):
            if region not in regions:
                regions.append(region)
                hosts[region] = []
            name = f"kgt-fix-{i + 1}"
            voters.append(Voter(name, region, weight, role == "galera"))
            hosts[region].append(name)
        return Layout(
            tuple(regions),
            tuple(voters),
            layout.keystone_regions,
            {r: tuple(h) for r, h in hosts.items()},
            layout.proxies_by_region,
        )


NEW_SITE = "kgt-site-"
MAX_ADDED = 4  # voters a fix may add


def _candidates(layout: Layout) -> Iterator[Fix]:
    """Fixes, smallest first: k added voters (k = 1…MAX_ADDED) placed in regions or new sites, then weights."""
    for k in range(1, MAX_ADDED + 1):
        places = [*layout.regions, *(f"{NEW_SITE}{i}" for i in range(1, k + 1))]
        seen: set[tuple[tuple[str, str, int], ...]] = set()
        for combo in itertools.combinations_with_replacement(places, k):
            # New sites are interchangeable: use them in order, one voter each.
            new = [p for p in combo if p.startswith(NEW_SITE)]
            if new != [f"{NEW_SITE}{i}" for i in range(1, len(new) + 1)]:
                continue
            add = tuple((p, "garbd" if p.startswith(NEW_SITE) else "galera", 1) for p in combo)
            if add not in seen:
                seen.add(add)
                yield Fix(add=add)
    for region in layout.regions:
        current = layout.voters_by_region[region][0].weight if layout.voters_by_region[region] else None
        for weight in range(0, 5):
            if current is not None and weight != current:
                yield Fix(weights=((region, weight),))


def fixes(layout: Layout, promises: Sequence[str], most: int = 2) -> list[Fix]:
    """Up to `most` of the smallest fixes that keep every promise, each verified by re-analysing."""
    out = []
    for fix in _candidates(layout):
        try:
            if not broken(fix.applied(layout), promises):
                out.append(fix)
        except ValueError:
            continue
        if len(out) >= most:
            break
    return out
