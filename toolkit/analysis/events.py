"""Failures and maintenance as data: one `Event` is what one failure takes away, named as `kgt analyze` names it.

Kinds: `node-loss` (a voter crashes), `region-loss` (every host of a region is gone),
`region-isolated` (a region loses every other region; its hosts run on), `split` (the
regions fall into two groups that cannot reach each other) and `maintenance` (a voter
is stopped cleanly, as in a rolling restart: it leaves gracefully, which Galera does
not count against the quorum). `parse` reads an event from its scenario name (`lose
r1-db1`, `lose region r3`, `isolate region r3`, `split {r1,r2} | {r3,r4}`, `restart
r1-db2`) or a short form (`r1-db1`, `r3`, `isolate:r3`, `restart:r1-db2`, `split:r1+r2`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolkit.errors import UsageError

FAILURE_KINDS = ("node-loss", "region-loss", "region-isolated", "split")
KINDS = (*FAILURE_KINDS, "maintenance")


@dataclass(frozen=True, order=True)
class Event:
    """One failure or maintenance step: its kind and target (a host, a region, or a split's two sides)."""

    kind: str
    target: str = ""
    sides: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    @property
    def name(self) -> str:
        """The scenario name: `lose r1-db1`, `lose region r3`, `isolate region r3`, `split {…} | {…}`, `restart H`."""
        if self.kind == "split":
            assert self.sides is not None
            a, b = self.sides
            return f"split {{{','.join(sorted(a))}}} | {{{','.join(sorted(b))}}}"
        verb = {
            "node-loss": "lose",
            "region-loss": "lose region",
            "region-isolated": "isolate region",
            "maintenance": "restart",
        }[self.kind]
        return f"{verb} {self.target}"

    @property
    def graceful(self) -> bool:
        """A clean stop: the node leaves the cluster gracefully."""
        return self.kind == "maintenance"


def node_loss(host: str) -> Event:
    """A voter crashes."""
    return Event("node-loss", host)


def region_loss(region: str) -> Event:
    """Every host of a region is gone."""
    return Event("region-loss", region)


def isolation(region: str) -> Event:
    """A region is cut off from every other region."""
    return Event("region-isolated", region)


def maintenance(host: str) -> Event:
    """A voter is stopped cleanly (a rolling restart)."""
    return Event("maintenance", host)


def split(side: tuple[str, ...] | list[str], regions: tuple[str, ...]) -> Event:
    """The regions fall into `side` and the rest; the side holding the first region comes first."""
    a = tuple(r for r in regions if r in side)
    b = tuple(r for r in regions if r not in side)
    if regions and regions[0] not in a:
        a, b = b, a
    return Event("split", "", (a, b))


_SPLIT = re.compile(r"^split\s*\{([^}]*)\}\s*\|\s*\{([^}]*)\}$")


def parse(text: str, hosts: dict[str, bool], regions: tuple[str, ...]) -> Event:
    """An event from its scenario name or short form; UsageError naming what is accepted.

    `hosts` maps each host name to whether it votes (only voters can be lost or restarted
    as a quorum event; losing any other host is part of a region loss).
    """
    word = " ".join(text.split())
    short = re.match(r"^(isolate|restart|lose|split):(.+)$", word)
    if short:
        verb, arg = short.group(1), short.group(2).strip()
        if verb == "split":
            side = [r.strip() for r in arg.split("+") if r.strip()]
            return _split(side, regions, text)
        word = {"isolate": "isolate region", "restart": "restart", "lose": "lose"}[verb] + " " + arg
    if match := _SPLIT.match(word):
        side = [r.strip() for r in match.group(1).split(",") if r.strip()]
        other = {r.strip() for r in match.group(2).split(",") if r.strip()}
        if set(side) | other != set(regions) or set(side) & other:
            raise UsageError(
                f"'{text}': a split names every region once, on one of two sides (regions: {', '.join(regions)})"
            )
        return _split(side, regions, text)
    for prefix, kind in (("lose region ", "region-loss"), ("isolate region ", "region-isolated")):
        if word.startswith(prefix):
            return _region_event(kind, word[len(prefix) :], regions, text)
    if word.startswith("restart "):
        return _host_event("maintenance", word[len("restart ") :], hosts, text)
    target = word.removeprefix("lose ")
    if target in regions and target not in hosts:
        return region_loss(target)
    return _host_event("node-loss", target, hosts, text)


def _region_event(kind: str, region: str, regions: tuple[str, ...], text: str) -> Event:
    if region not in regions:
        raise UsageError(f"'{text}': unknown region '{region}' (regions: {', '.join(regions)})")
    if kind == "region-isolated" and len(regions) < 2:
        raise UsageError(f"'{text}': a site of one region cannot isolate it")
    return Event(kind, region)


def _host_event(kind: str, host: str, hosts: dict[str, bool], text: str) -> Event:
    if host not in hosts:
        raise UsageError(
            f"'{text}': not a host, region or scenario name (e.g. 'lose r1-db1', 'r1-db1', "
            "'lose region r3', 'isolate region r3', 'restart r1-db2', 'split {r1,r2} | {r3,r4}')"
        )
    if not hosts[host]:
        raise UsageError(f"'{text}': {host} holds no vote (not galera or garbd); lose its region instead")
    return Event(kind, host)


def _split(side: list[str], regions: tuple[str, ...], text: str) -> Event:
    unknown = [r for r in side if r not in regions]
    if unknown or not side or set(side) == set(regions):
        raise UsageError(
            f"'{text}': a split names the regions of one side, not all of them (regions: {', '.join(regions)})"
        )
    return split(side, regions)
