"""`kgt rollout status`: per host, what is published, what its agent runs, and in what state.

A host has converged when its agent reports the published generation as applied and no
managed file drifted. JSON (`--format json`), one object per host:

    {"host": str, "region": str, "published": int|null, "applied": int|null,
     "state": "applied|applying|waiting|failed|stale|pending|unknown", "reason": str|null,
     "drift": [path], "stale_since": str|null, "converged": bool}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from toolkit.render.select import Selection
from toolkit.rollout import publish
from toolkit.rollout.keys import Keys
from toolkit.rollout.manifest import Manifest
from toolkit.secretstore import Secrets
from toolkit.store import Store
from toolkit.topology.model import Topology


@dataclass(frozen=True)
class Row:
    """One host's rollout."""

    host: str
    region: str
    published: int | None
    applied: int | None
    state: str
    reason: str | None
    drift: tuple[str, ...]
    stale_since: str | None

    @property
    def converged(self) -> bool:
        """Whether the host runs what is published for it, untouched."""
        if self.published is None:
            return True  # nothing published for it: nothing to run
        return self.applied == self.published and self.state == "applied" and not self.drift

    def summary(self) -> str:
        """`r1-db1 (failed: …)`, for `rollout wait`."""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.host} ({self.state}{why}; applied {self.applied}, published {self.published})"

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return {**self.__dict__, "drift": list(self.drift), "converged": self.converged}


def read(topology: Topology, secrets: Secrets, selection: Selection) -> list[Row]:
    """Every selected host's row, from the manifests and the agents' statuses (as etcd's root)."""
    keys = Keys(topology.name)
    rows = []
    with Store(publish.root_settings(topology, secrets)) as store:
        statuses, _ = store.get_prefix(keys.statuses)
        for host in selection.chosen(topology):
            item = store.get(keys.manifest(host.name))
            published = Manifest.from_bytes(item.value, keys.manifest(host.name)).generation if item else None
            raw = statuses.get(keys.status(host.name))
            s: dict[str, Any] = json.loads(raw.value) if raw else {}
            rows.append(
                Row(
                    host.name,
                    host.region,
                    published,
                    s.get("generation") if raw else None,
                    str(s.get("state", "unknown")),
                    s.get("reason"),
                    tuple(s.get("drift", ())),
                    s.get("stale_since"),
                )
            )
    return rows


def table(rows: list[Row]) -> list[str]:
    """The rows for people."""
    width = max((len(r.host) for r in rows), default=4)
    out = [f"{'host':<{width}}  region  published  applied  state     reason"]
    for r in rows:
        shown = "-" if r.published is None else str(r.published)
        applied = "-" if r.applied is None else str(r.applied)
        reason = r.reason or ""
        if r.drift:
            reason = f"drift: {', '.join(r.drift)}" + (f"; {reason}" if reason else "")
        if r.stale_since:
            reason = f"stale since {r.stale_since}" + (f"; {reason}" if reason else "")
        out.append(f"{r.host:<{width}}  {r.region:<6}  {shown:>9}  {applied:>7}  {r.state:<8}  {reason}".rstrip())
    return out
