"""What a render would change in an existing output directory, and the reload plan.

Secrets are masked in every line shown; a file holding a private key shows no line at all.
The plan restarts Galera one node at a time, region by region, before proxies and the
rest, so the cluster never loses quorum.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from toolkit.render.engine import RenderedFile
from toolkit.secretstore import Secrets
from toolkit.topology.model import Topology

# Order in which services are reloaded after their files change.
_RELOAD_ORDER = (
    # The firewall first: a new peer's or port's flow must be open before the service that uses it.
    "nftables",
    "mariadb",
    "kgt-health",
    "garbd",
    "sysctl",
    "haproxy",
    "keepalived",
    "memcached",
    "keystone",
    "named",
    "dns",
)
MASK = "********"
KEY_HIDDEN = "  (holds a private key: contents not shown)\n"


def holds_key(text: str) -> bool:
    """Whether a file's text holds a PEM private key (a TLS key, HAProxy's combined PEM)."""
    return "PRIVATE KEY-----" in text


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


def secret_contexts(files: list[RenderedFile], secrets: Secrets) -> set[tuple[str, str]]:
    """(text before, text after) every secret value on its line, in every rendered file.

    The files on disk may hold secret values that are no longer in the secrets file (after
    `kgt secrets rotate`); `mask` cannot know those, but they sit in the same places.
    """
    values = [v for v in secrets.values.values() if v]
    contexts = set()
    for f in files:
        for line in f.content.splitlines():
            spans = [(i, i + len(v)) for v in values for i in _find_all(line, v)]
            if spans:
                prefix = line[: min(a for a, _ in spans)]
                if prefix.strip():
                    contexts.add((prefix, line[max(b for _, b in spans) :]))
    return contexts


def _find_all(line: str, value: str) -> list[int]:
    found, start = [], line.find(value)
    while start >= 0:
        found.append(start)
        start = line.find(value, start + 1)
    return found


def mask_existing(text: str, secrets: Secrets, contexts: set[tuple[str, str]]) -> str:
    """Text of a file on disk with known secrets masked, and anything where a secret now sits.

    Where the text after the secret no longer matches either, the rest of the line is
    masked: hiding too much is better than showing an old password.
    """
    lines = []
    for line in secrets.mask(text).splitlines(keepends=True):
        body = line.rstrip("\r\n")
        end = line[len(body) :]
        # Of the contexts that fit (the same line of another host has another suffix), the
        # one that leaves most of the line readable.
        best: tuple[int, str, str] | None = None
        for prefix, suffix in contexts:
            if body.startswith(prefix) and len(body) > len(prefix):
                rest = body[len(prefix) :]
                keep = suffix if suffix and rest.endswith(suffix) and len(rest) > len(suffix) else ""
                candidate = (len(prefix) + len(keep), prefix, keep)
                if best is None or candidate > best:
                    best = candidate
        if best is not None:
            body = best[1] + MASK + best[2]
        lines.append(body + end)
    return "".join(lines)


def changes(
    files: list[RenderedFile], out: Path, secrets: Secrets, keep: Callable[[str], bool] = lambda path: True
) -> list[Change]:
    """Files that would be added, changed or removed by rendering into `out` (only its files `keep` keeps)."""
    existing = {path: text for path, text in _read_existing(out).items() if keep(path)}
    return compare(files, existing, secrets)


def compare(files: list[RenderedFile], existing: Mapping[str, str], secrets: Secrets) -> list[Change]:
    """Files of `files` that differ from `existing` (path → text: a directory, or what is published)."""
    existing = dict(existing)
    contexts = secret_contexts(files, secrets)
    result = []
    for f in files:
        old = existing.pop(f.path, None)
        if old == f.content:
            continue
        status = "added" if old is None else "changed"
        if holds_key(f.content) or holds_key(old or ""):
            result.append(Change(f.path, f.host, status, KEY_HIDDEN, f.service, f.reload))
            continue
        diff = "".join(
            difflib.unified_diff(
                mask_existing(old or "", secrets, contexts).splitlines(keepends=True),
                secrets.mask(f.content).splitlines(keepends=True),
                fromfile=f"a/{f.path}",
                tofile=f"b/{f.path}",
            )
        )
        if not diff:
            diff = "  (only secret values changed; masked)\n"
        result.append(Change(f.path, f.host, status, diff, f.service, f.reload))
    for path, old in existing.items():
        if holds_key(old):
            result.append(Change(path, path.split("/", 1)[0], "removed", KEY_HIDDEN, "", "remove the file by hand"))
            continue
        diff = "".join(
            difflib.unified_diff(
                mask_existing(old, secrets, contexts).splitlines(keepends=True),
                [],
                fromfile=f"a/{path}",
                tofile="/dev/null",
            )
        )
        result.append(Change(path, path.split("/", 1)[0], "removed", diff, "", "remove the file by hand"))
    return sorted(result, key=lambda c: c.path)


def reload_plan(topology: Topology, changed: list[Change]) -> list[str]:
    """Ordered steps: firewalls first, then Galera nodes one at a time region by region, then the other services."""
    # Every distinct reload of a service on a host: files of one service can need different
    # ones (a changed zone needs `rndc reload`, a changed named.conf `rndc reconfig`).
    by_host: dict[str | None, dict[str, list[str]]] = {}
    for change in changed:
        if change.status != "removed":
            reloads = by_host.setdefault(change.host, {}).setdefault(change.service, [])
            if change.reload not in reloads:
                reloads.append(change.reload)
    steps = []
    order = [h.name for h in topology.hosts] + [None]
    for service in _RELOAD_ORDER:
        for host in order:
            for reload in by_host.get(host, {}).get(service, []):
                where = host or "site"
                suffix = "; wait until it is Synced before the next node" if service == "mariadb" and host else ""
                steps.append(f"{where}: {reload}{suffix}")
    return steps
