"""`kgt publish`: render in memory and write a new generation to etcd, one transaction per host.

Design (README: Rollout): a publish reserves the next generation number N with a
compare-and-set on `/kgt/<site>/generation` (two publishers at once: the second one is
told to publish again), then, for each selected host whose files differ from what it has
now, writes in ONE etcd transaction the contents it does not hold yet (encrypted for that
host), the new manifest naming generation N, and the removal of contents neither the old
nor the new manifest names; the transaction holds only while the host's manifest is still
the one read, so a concurrent change is never overwritten. An agent watches only its
manifest, so it sees the old generation or the new one, never half of one. A host whose
files did not change keeps its generation; a publish that changes nothing writes nothing.

The agents' own start-up files (`/etc/kgt/agent.*`, the CA they verify etcd with and the
systemd unit) are not published: they are what lets an agent read etcd at all, and come
with `kgt render` like any agent's bootstrap. `--dry-run` reads what is published and
shows per host what would change (secrets masked, as `kgt diff` does) and the plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from toolkit.errors import PublishError, StoreAuthFailed, StoreError
from toolkit.render import diff as differ
from toolkit.render.engine import AGENT_SERVICE, RenderedFile, render
from toolkit.render.select import Selection
from toolkit.rollout.credentials import for_host as credentials
from toolkit.rollout.keys import Keys
from toolkit.rollout.manifest import Manifest, digest
from toolkit.secretstore import Secrets
from toolkit.store import Item, Store, StoreSettings, UserSpec, setup_auth
from toolkit.topology import etcd
from toolkit.topology.model import Topology


def endpoints(topology: Topology) -> tuple[str, ...]:
    """The client URLs of the site's etcd members; a PublishError when it has none."""
    urls = etcd.client_urls(topology)
    if not urls:
        raise PublishError(f"{topology.source}: no host has the etcd role: there is no store to publish to")
    return urls


def root_settings(topology: Topology, secrets: Secrets) -> StoreSettings:
    """How `kgt publish` and `kgt rollout` talk to etcd: as root, verifying members with the site CA."""
    return StoreSettings(endpoints(topology), topology.client_ca, "root", secrets["etcd_root_password"])


def ensure_auth(topology: Topology, secrets: Secrets) -> None:
    """etcd's root and one user per host with its grants; auth on. Idempotent (every publish runs it).

    Setting auth up takes a few dozen requests, so the site keeps a fingerprint of what it set
    (`/kgt/<site>/auth`: an HMAC keyed with the root password over every user, grant and
    password; no secret): a publish that finds the same fingerprint skips it.
    """
    keys = Keys(topology.name)
    users: dict[str, UserSpec] = {}
    for host in topology.hosts:
        c = credentials(topology, secrets, host.name)
        users[c.user] = (c.password, keys.agent_grants(host.name))
    root = secrets["etcd_root_password"]
    spec = json.dumps({u: [p, [list(g) for g in grants]] for u, (p, grants) in sorted(users.items())})
    fingerprint = hmac.new(root.encode(), spec.encode(), hashlib.sha256).hexdigest().encode()
    try:
        with Store(root_settings(topology, secrets)) as store:
            item = store.get(keys.auth)
            if item is not None and hmac.compare_digest(item.value, fingerprint):
                return
    except StoreAuthFailed:
        pass  # a new cluster: root is not set up yet
    setup_auth(root_settings(topology, secrets), root, users)
    with Store(root_settings(topology, secrets)) as store:
        store.put(keys.auth, fingerprint)


def host_files(topology: Topology, secrets: Secrets, selection: Selection) -> dict[str, list[RenderedFile]]:
    """Every selected host's published files, by host, in file order of the topology."""
    files = [f for f in render(topology, secrets) if f.host is not None and f.service != AGENT_SERVICE]
    return {h.name: [f for f in files if f.host == h.name] for h in selection.chosen(topology)}


@dataclass(frozen=True)
class HostPlan:
    """What a publish does to one host: its manifest now (None: nothing yet), the new one, and its files."""

    host: str
    current: Manifest | None
    current_revision: int  # the manifest key's mod_revision (0: no such key)
    new: Manifest
    files: tuple[RenderedFile, ...]

    @property
    def changed(self) -> bool:
        """Whether the host's files differ from what it has now."""
        return not self.new.same_files(self.current)


def read_manifest(store: Store, keys: Keys, host: str) -> tuple[Manifest | None, int]:
    """`host`'s manifest and its key's mod_revision (None, 0 when nothing was published)."""
    item = store.get(keys.manifest(host))
    if item is None:
        return None, 0
    return Manifest.from_bytes(item.value, keys.manifest(host)), item.mod_revision


def plan(store: Store, topology: Topology, secrets: Secrets, selection: Selection) -> list[HostPlan]:
    """Each selected host's current and new manifest (the new one numbered later: generation 0 here)."""
    keys = Keys(topology.name)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    plans = []
    for host, files in host_files(topology, secrets, selection).items():
        current, revision = read_manifest(store, keys, host)
        new = Manifest.build(topology.name, host, 0, stamp, files)
        plans.append(HostPlan(host, current, revision, new, tuple(files)))
    return plans


def published_texts(store: Store, topology: Topology, secrets: Secrets, p: HostPlan) -> dict[str, str]:
    """What `p.host` has now, as `<host>/<path>` → text (what `kgt diff` compares against)."""
    if p.current is None:
        return {}
    keys, c = Keys(topology.name), credentials(topology, secrets, p.host)
    blobs, _ = store.get_prefix(keys.blobs(p.host))
    out = {}
    for entry in p.current.files:
        item = blobs.get(keys.blob(p.host, entry.sha256))
        if item is not None:
            text = c.open(item.value, keys.blob(p.host, entry.sha256)).decode("utf-8", "replace")
            out[f"{p.host}{entry.path}"] = text
    return out


def dry_run(store: Store, topology: Topology, secrets: Secrets, plans: Sequence[HostPlan]) -> list[differ.Change]:
    """The changes a publish would make, host by host, secrets masked (`kgt diff`'s form)."""
    changes: list[differ.Change] = []
    for p in plans:
        if p.changed:
            changes += differ.compare(list(p.files), published_texts(store, topology, secrets, p), secrets)
    return changes


def reserve_generation(store: Store, keys: Keys) -> int:
    """The next generation number, reserved with a compare-and-set (PublishError if another publish won)."""
    item = store.get(keys.generation)
    number = int(item.value) + 1 if item is not None else 1
    done = store.commit({keys.generation: str(number).encode()}, if_revision=(keys.generation, _rev(item)))
    if not done.succeeded:
        raise PublishError("another publish reserved the same generation at the same time: publish again")
    return number


def _rev(item: Item | None) -> int:
    return item.mod_revision if item is not None else 0


def write_host(store: Store, topology: Topology, secrets: Secrets, p: HostPlan, generation: int) -> Manifest:
    """One host's new generation in one transaction (see the module docstring); the manifest written."""
    keys, c = Keys(topology.name), credentials(topology, secrets, p.host)
    new = Manifest(p.new.site, p.host, generation, p.new.published, p.new.files)
    held, _ = store.get_prefix(keys.blobs(p.host))
    wanted = {e.sha256 for e in new.files} | {e.sha256 for e in (p.current.files if p.current else ())}
    puts = {}
    for f in p.files:
        content = f.content.encode()
        key = keys.blob(p.host, digest(content))
        if key not in held:
            puts[key] = c.seal(content)
    puts[keys.manifest(p.host)] = new.to_bytes()
    stale = [k for k in held if k.rsplit("/", 1)[1] not in wanted]
    done = store.commit(puts, stale, if_revision=(keys.manifest(p.host), p.current_revision))
    if not done.succeeded:
        raise PublishError(f"{p.host}: its manifest changed while publishing (another publish?): publish again")
    return new


Echo = Callable[[str], None]


def publish(topology: Topology, secrets: Secrets, selection: Selection, echo: Echo) -> int:
    """Write a new generation for every selected host whose files changed; the generation, 0 if none changed."""
    ensure_auth(topology, secrets)
    keys = Keys(topology.name)
    with Store(root_settings(topology, secrets)) as store:
        plans = plan(store, topology, secrets, selection)
        changed = [p for p in plans if p.changed]
        if not changed:
            echo(f"nothing to publish: {selection.describe()} already has these files")
            return 0
        generation = reserve_generation(store, keys)
        for p in changed:
            try:
                write_host(store, topology, secrets, p, generation)
            except StoreError as exc:
                raise StoreError(f"{p.host}: {exc} (hosts before it have generation {generation})") from None
            was = f"generation {p.current.generation}" if p.current else "nothing"
            echo(f"{p.host}: generation {generation} published ({len(p.files)} files; had {was})")
        unchanged = len(plans) - len(changed)
        echo(f"published generation {generation} to {len(changed)} hosts ({unchanged} unchanged)")
        return generation
