"""Part of a site: the hosts of some regions and some named hosts (`--region R`, `--host H`).

`kgt render`, `kgt diff` and `kgt publish` take the same selection, so a change can be made
region by region (a canary region first). An empty selection is the whole site. Files that
belong to no host (the zone in `dns/`, `sql/bootstrap.sql`) are every region's: a selection
keeps them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from toolkit.errors import UsageError
from toolkit.topology.model import Host, Topology


@dataclass(frozen=True)
class Selection:
    """Region and host names; neither given: everything."""

    regions: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        """Whether it selects the whole site."""
        return not self.regions and not self.hosts

    def check(self, topology: Topology) -> Selection:
        """Itself, once every name is known; else a UsageError naming the unknown one."""
        _known("region", self.regions, [r.name for r in topology.regions])
        _known("host", self.hosts, [h.name for h in topology.hosts])
        return self

    def chosen(self, topology: Topology) -> tuple[Host, ...]:
        """The selected hosts, in file order."""
        return tuple(h for h in topology.hosts if self.has(h))

    def has(self, host: Host) -> bool:
        """Whether `host` is selected."""
        return self.everything or host.region in self.regions or host.name in self.hosts

    def keeps(self, topology: Topology, host_name: str | None) -> bool:
        """Whether a file of `host_name` (None: a file of the whole site) is part of the selection."""
        return host_name is None or self.has(topology.host(host_name))

    def describe(self) -> str:
        """`the whole site`, or `region r1, host r2-db1`."""
        if self.everything:
            return "the whole site"
        parts = [f"region {r}" for r in self.regions] + [f"host {h}" for h in self.hosts]
        return ", ".join(parts)


def _known(kind: str, names: Iterable[str], known: Sequence[str]) -> None:
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" ({kind}s: {', '.join(known)})"
            raise UsageError(f"--{kind} {name}: no such {kind} in the topology{hint}")
