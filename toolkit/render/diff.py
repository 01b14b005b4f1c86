"""What a render would change in an existing output directory, and the reload plan.

Secrets are masked in every line shown. The plan restarts Galera one node at a time,
region by region, before proxies and the rest, so the cluster never loses quorum.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from toolkit.render.engine import RenderedFile
from toolkit.secretstore import Secrets
from toolkit.topology.model import Topology

# Order in which services are reloaded after their files change.
_RELOAD_ORDER = ("mariadb", "kgt-health", "garbd", "sysctl", "haproxy", "keepalived", "memcached", "keystone", "named", "dns")


@dataclass(frozen=True)
class Change:
    """One file that differs: added, removed or changed, with its masked unified diff."""

    path: str
    host: str | None
    status: str  # added | removed | changed
    diff: str
    service: str
    reload: str


def _read_existing(out: Path) -> dict[str, str]:
    files = {}
    if out.is_dir():
        for path in sorted(out.rglob("*")):
            rel = path.relative_to(out).as_posix()
            if path.is_file() and rel != "manifest.json":
                files[rel] = path.read_text(encoding="utf-8", errors="replace")
    return files


def changes(files: list[RenderedFile], out: Path, secrets: Secrets) -> list[Change]:
    """Files that would be added, changed or removed by rendering into `out`."""
    existing = _read_existing(out)
    result = []
    for f in files:
        old = existing.pop(f.path, None)
        if old == f.content:
            continue
        status = "added" if old is None else "changed"
        diff = "".join(difflib.unified_diff(
            secrets.mask(old or "").splitlines(keepends=True),
            secrets.mask(f.content).splitlines(keepends=True),
            fromfile=f"a/{f.path}", tofile=f"b/{f.path}"))
        result.append(Change(f.path, f.host, status, diff, f.service, f.reload))
    for path, old in existing.items():
        diff = "".join(difflib.unified_diff(secrets.mask(old).splitlines(keepends=True), [],
                                            fromfile=f"a/{path}", tofile="/dev/null"))
        result.append(Change(path, path.split("/", 1)[0], "removed", diff, "", "remove the file by hand"))
    return sorted(result, key=lambda c: c.path)


def reload_plan(topology: Topology, changed: list[Change]) -> list[str]:
    """Ordered steps: Galera nodes one at a time region by region, then the other services."""
    by_host: dict[str | None, dict[str, str]] = {}
    for change in changed:
        if change.status != "removed":
            by_host.setdefault(change.host, {})[change.service] = change.reload
    steps = []
    order = [h.name for h in topology.hosts] + [None]
    for service in _RELOAD_ORDER:
        for host in order:
            reload = by_host.get(host, {}).get(service)
            if reload:
                where = host or "site"
                suffix = "; wait until it is Synced before the next node" if service == "mariadb" and host else ""
                steps.append(f"{where}: {reload}{suffix}")
    return steps
