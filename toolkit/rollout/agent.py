"""`kgt agent`: on each host, watch this host's generation in etcd and apply it, safely.

The loop: read the manifest (`hosts/<host>/manifest`), apply it when its generation is not
the one applied, report, then watch the manifest from the revision after the read. A
compacted revision leads to a full read again, never to a missed change; a lost etcd is
retried with jittered backoff while every file stays as it is (nothing is removed) and
the status says "stale since …"; on reconnection the loop reads again and converges.

Applying a generation (`Agent.apply`): fetch every content the manifest names and check
its SHA-256 (a missing or altered content fails the generation: never an empty file);
refuse when a managed file was changed by hand (drift) unless the agent was told to
overwrite; stage, check, swap (`toolkit.rollout.apply`); run each service's action once,
coordinated where it takes capacity away (`toolkit.rollout.coordinate`); wait until the
service is healthy, and when it is not, put the previous files back, act again and
report the generation failed. A killed agent finishes the journal's swap on its next
start and runs the actions then.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from toolkit.errors import ActionFailed, AgentError, Compacted, NotActed, StoreError, StoreUnavailable
from toolkit.files import write_atomic
from toolkit.rollout import apply as files
from toolkit.rollout.actions import order_of
from toolkit.rollout.coordinate import Coordinator
from toolkit.rollout.credentials import AgentCredentials
from toolkit.rollout.keys import Keys
from toolkit.rollout.manifest import Entry, Manifest, digest
from toolkit.store import Store

log = logging.getLogger("toolkit.rollout.agent")
WATCH_SLICE = 20.0  # s a watch runs before the loop reads again (also the drift check's pace)
BACKOFF = (0.5, 10.0)  # s: first and largest wait after etcd did not answer


@dataclass(frozen=True)
class AgentConfig:
    """`/etc/kgt/agent.yaml` (rendered by `kgt render`)."""

    site: str
    host: str
    endpoints: tuple[str, ...]
    ca: Path | None
    secret_file: Path
    state_dir: Path
    services: str = "systemd"  # systemd | lab
    root: Path = Path("/")  # where the host's files are (tests: a folder)
    overwrite_drift: bool = False

    @classmethod
    def read(cls, path: Path) -> AgentConfig:
        """Parse the config file; an AgentError naming the file and the problem."""
        try:
            data = yaml.safe_load(path.read_text())
            return cls(
                site=str(data["site"]),
                host=str(data["host"]),
                endpoints=tuple(str(u) for u in data["endpoints"]),
                ca=Path(data["ca"]) if data.get("ca") else None,
                secret_file=Path(data["secret_file"]),
                state_dir=Path(data["state_dir"]),
                services=str(data.get("services", "systemd")),
                root=Path(data.get("root", "/")),
                overwrite_drift=bool(data.get("overwrite_drift", False)),
            )
        except OSError as exc:
            raise AgentError(f"{path}: cannot read the agent's config: {exc.strerror}") from None
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise AgentError(f"{path}: not an agent config ({exc.__class__.__name__}: {exc})") from None

    def credentials(self) -> AgentCredentials:
        """The host's etcd user, password and file key, from `secret_file`."""
        try:
            data = yaml.safe_load(self.secret_file.read_text())
            return AgentCredentials(str(data["user"]), str(data["password"]), str(data["file_key"]).encode())
        except OSError as exc:
            raise AgentError(f"{self.secret_file}: cannot read the agent's credentials: {exc.strerror}") from None
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise AgentError(f"{self.secret_file}: not agent credentials ({exc.__class__.__name__})") from None


def now() -> str:
    """The time, for status records."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Status:
    """What the agent says of itself (`status/<host>/state`; README: Rollout status)."""

    host: str
    generation: int = 0  # applied
    target: int = 0  # the newest generation seen in etcd
    state: str = "pending"  # applied | applying | waiting | failed | stale | pending
    reason: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # path → sha256 of what is applied
    drift: list[str] = field(default_factory=list)
    at: str = ""
    stale_since: str | None = None

    def to_bytes(self) -> bytes:
        """The JSON `kgt rollout status` reads; `clock` is the agent's, for offset checks."""
        data = {**self.__dict__, "clock": time.time()}
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Status:
        """Read back a status (unknown fields ignored)."""
        data = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Agent:
    """One host's agent (see the module docstring)."""

    def __init__(
        self, config: AgentConfig, store: Store, credentials: AgentCredentials, coordinator: Coordinator
    ) -> None:
        self.config = config
        self.store = store
        self.credentials = credentials
        self.coordinator = coordinator
        self.keys = Keys(config.site)
        self.status = Status(config.host)
        self.applied: Manifest | None = None
        self._load_state()

    # -- state on disk ------------------------------------------------------------------------

    @property
    def _state_file(self) -> Path:
        return self.config.state_dir / "applied.json"

    def _load_state(self) -> None:
        try:
            raw = self._state_file.read_bytes()
        except FileNotFoundError:
            return
        self.applied = Manifest.from_bytes(raw, str(self._state_file))
        self.status.generation = self.status.target = self.applied.generation
        self.status.files = {e.path: e.sha256 for e in self.applied.files}
        self.status.state = "applied"

    def _save_state(self, manifest: Manifest) -> None:
        write_atomic(self._state_file, manifest.to_bytes(), 0o600)
        self.applied = manifest

    # -- reporting ----------------------------------------------------------------------------

    def report(self, state: str, reason: str | None = None) -> None:
        """Set and publish the status (kept locally when etcd does not answer)."""
        self.status.state, self.status.reason, self.status.at = state, reason, now()
        write_atomic(self.config.state_dir / "status.json", self.status.to_bytes(), 0o600)
        try:
            self.store.put(self.keys.status(self.config.host), self.status.to_bytes())
            self.status.stale_since = None
        except StoreError as exc:
            log.warning("status not written to etcd: %s", exc)
            self.status.stale_since = self.status.stale_since or now()
        log.info("generation %d: %s%s", self.status.target, state, f": {reason}" if reason else "")

    def check_drift(self) -> list[str]:
        """Managed files whose content on disk is not what was applied (changed by hand)."""
        if self.applied is None:
            return []
        root = self.config.root
        return [e.path for e in self.applied.files if files.sha_of(files.on_disk(root, e.path)) != e.sha256]

    # -- one generation -----------------------------------------------------------------------

    def fetch(self, manifest: Manifest) -> dict[str, bytes]:
        """Every content the manifest names, decrypted and checked; StoreError naming the first bad one."""
        blobs, _ = self.store.get_prefix(self.keys.blobs(self.config.host))
        out = {}
        for entry in manifest.files:
            key = self.keys.blob(self.config.host, entry.sha256)
            item = blobs.get(key)
            if item is None:
                raise StoreError(f"{entry.path}: its content {entry.sha256[:12]} is missing in etcd")
            content = self.credentials.open(item.value, key)
            if digest(content) != entry.sha256:
                raise StoreError(f"{entry.path}: its content does not match the manifest's SHA-256")
            out[entry.path] = content
        return out

    def changed_entries(self, manifest: Manifest) -> list[Entry]:
        """The entries whose file on disk is not already this content with this mode and owner.

        So a host whose files are already in place (a site adopted, a generation applied by a
        killed agent) acts on nothing.
        """
        return [e for e in manifest.files if not files.in_place(self.config.root, e)]

    def apply(self, manifest: Manifest) -> bool:
        """Apply one generation (see the module docstring); whether it is now the applied one."""
        self.status.target = manifest.generation
        drift = [p for p in self.check_drift() if manifest.entry(p) is not None]
        if drift and not self.config.overwrite_drift:
            self.status.drift = drift
            self.report("failed", f"drift: {', '.join(drift)} changed on this host by hand; not overwritten")
            return False
        self.report("applying")
        try:
            contents = self.fetch(manifest)
        except StoreError as exc:
            self.report("failed", str(exc))
            return False
        changed = self.changed_entries(manifest)
        root, state_dir = self.config.root, self.config.state_dir
        staged = {e.path: files.stage(root, e, contents[e.path]) for e in changed}
        refused = files.run_checks(changed, staged)
        if refused is not None:
            files.discard_staged(root, list(staged))
            self.report("failed", refused.describe())
            return False
        paths = [e.path for e in changed]
        files.keep_previous(root, state_dir, paths)
        files.Journal(manifest.generation, tuple(paths)).write(state_dir)
        files.swap(root, paths)
        return self.finish(manifest, changed)

    def finish(self, manifest: Manifest, changed: list[Entry]) -> bool:
        """After the swap: the actions, health, rollback on failure; the state and the journal."""
        root, state_dir = self.config.root, self.config.state_dir
        acted: list[str] = []
        try:
            self.run_actions(changed, acted=acted)
        except ActionFailed as exc:
            paths = [e.path for e in changed]
            files.restore_previous(root, state_dir, paths)
            files.Journal.clear(state_dir)
            if not isinstance(exc, NotActed):
                acted.append(exc.service)
                self.coordinator.halt(exc.service, f"{self.config.host}: {exc}")
            try:  # the services that took the new files take the old ones again; the others never saw them
                self.run_actions([e for e in changed if e.service in acted], coordinated=False)
            except ActionFailed as again:
                log.error("rollback's actions failed too: %s", again)
            was = self.applied.generation if self.applied else 0
            self.report("failed", f"{exc}; rolled back to generation {was}")
            return False
        self._save_state(manifest)
        files.Journal.clear(state_dir)
        self.status.generation = manifest.generation
        self.status.files = {e.path: e.sha256 for e in manifest.files}
        self.status.drift = []
        self.report("applied")
        return True

    def run_actions(self, changed: list[Entry], *, coordinated: bool = True, acted: list[str] | None = None) -> None:
        """Each changed service's action once, in `ORDER`, the strongest action its files ask for (`acted`: done)."""
        wanted: dict[str, tuple[str, list[str]]] = {}
        rank = {"none": 0, "apply": 1, "reload": 2, "restart": 3}
        for e in changed:
            action, paths = wanted.get(e.service, ("none", []))
            wanted[e.service] = (max(action, e.action, key=rank.__getitem__), [*paths, e.path])
        for service in sorted(wanted, key=order_of):
            action, paths = wanted[service]
            self.coordinator.act(service, action, paths, coordinated=coordinated, waiting=self._waiting)
            if acted is not None:
                acted.append(service)

    def _waiting(self, why: str) -> None:
        self.report("waiting", why)

    def recover(self) -> None:
        """On start: finish a swap a killed agent left, or throw away staged copies no journal names."""
        journal = files.Journal.read(self.config.state_dir)
        try:
            item = self.store.get(self.keys.manifest(self.config.host))
        except StoreError:
            item = None
        manifest = Manifest.from_bytes(item.value, "manifest") if item else None
        if journal is None:
            if manifest is not None:
                files.discard_staged(self.config.root, [e.path for e in manifest.files])
            return
        files.swap(self.config.root, journal.paths)
        if manifest is not None and manifest.generation == journal.generation:
            self.status.target = manifest.generation
            self.finish(manifest, [e for e in manifest.files if e.path in journal.paths])
        else:
            files.Journal.clear(self.config.state_dir)  # a newer generation supersedes it: applied next

    # -- the loop -----------------------------------------------------------------------------

    def step(self) -> int:
        """Read the manifest and apply it when new; the revision to watch from."""
        item = self.store.get(self.keys.manifest(self.config.host))
        revision = item.mod_revision if item else 0
        if item is None:
            self.report("pending", "nothing published for this host yet")
            return revision
        manifest = Manifest.from_bytes(item.value, self.keys.manifest(self.config.host))
        if self.applied is None or manifest.generation != self.applied.generation:
            self.apply(manifest)
        else:
            self.status.target = manifest.generation
            self.status.drift = self.check_drift()
            self.report("applied", f"drift: {', '.join(self.status.drift)}" if self.status.drift else None)
        return revision

    def run(self, stop: threading.Event, sleep: Callable[[float], bool] | None = None) -> None:
        """Until `stop` is set: step, then watch; etcd errors back off (jittered) and read again."""
        wait = sleep or stop.wait
        backoff = BACKOFF[0]
        self.recover()
        while not stop.is_set():
            try:
                revision = self.step()
                backoff = BACKOFF[0]
                for event in self.store.watch(self.keys.manifest(self.config.host), revision + 1, WATCH_SLICE):
                    if stop.is_set() or event.kind == "put":
                        break
            except Compacted:
                continue
            except (StoreUnavailable, StoreError) as exc:
                self.status.stale_since = self.status.stale_since or now()
                self.report("stale", f"etcd: {exc}")
                wait(backoff * random.uniform(0.5, 1.5))
                backoff = min(BACKOFF[1], backoff * 2)
