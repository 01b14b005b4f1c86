"""Restarts that take capacity away, coordinated through etcd so the site never loses quorum or a region.

Policy per service (`POLICY`):

- Galera (`mariadb` restart): one node at a time in the whole site, in file order (region
  by region): a node waits until every Galera node before it runs this generation, takes
  the site-wide `galera` lock (a lease: a dead agent releases it), and restarts only when
  it is Synced, every voter is in its Primary component and the analysis says its clean
  leave keeps Primary (`toolkit.analysis`: a maintenance event). It is drained first — the
  health endpoint's maintenance file, so its region's HAProxy moves clients to the next
  server before the restart — and undrained once it is Synced again, before the lock goes.
- etcd: one member at a time, site-wide (`etcd` lock), healthy before the lock goes.
- Keystone: one host at a time per region (`keystone-<region>`); a region with one
  Keystone host takes the site-wide `keystone` lock instead, so no two regions are served
  by their backups at once.
- HAProxy reloads gracefully after a random splay (no herd); keepalived reloads.

A service whose restart did not come back healthy is halted (`halt/<service>`): no agent
restarts it again until an operator clears the key (`kgt rollout resume SERVICE`), and each
says so in its status. While the lock's lease is lost (etcd cut off) a step in progress is
finished, and no new one starts.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

from toolkit.analysis import events
from toolkit.analysis.cluster import evaluate
from toolkit.analysis.model import Layout
from toolkit.errors import Halted, NotActed, StoreError
from toolkit.rollout.actions import ServiceActions
from toolkit.rollout.apply import on_disk
from toolkit.rollout.keys import Keys
from toolkit.services import wsrep_status
from toolkit.store import Item, Store
from toolkit.topology.model import Topology
from toolkit.topology.settings import HaproxyConfig
from toolkit.wsrep import SYNCED, NodeState

log = logging.getLogger("toolkit.rollout.coordinate")
MAINTENANCE = "/etc/kgt/maintenance"  # `kgt health serve` answers 503 while it exists (a drained node)
LOCK_TTL = 15  # s: a dead agent's lock is free again after this
LOCK_WAIT = 900.0  # s an agent waits for its turn and the lock
SPLAY = 0.5  # s: the most a proxy waits before its graceful reload
TURN_POLL = 0.5  # s between looks at the hosts before this one


@dataclass(frozen=True)
class Policy:
    """How one service's restart is coordinated."""

    lock: Callable[[Topology, str], str | None]  # the lock's name for a host (None: no lock)
    in_turn: bool = False  # wait until the hosts of this role before it run the generation
    drain: bool = False  # take the node out of HAProxy first (Galera)
    splay: float = 0.0


def _keystone_lock(topology: Topology, host: str) -> str:
    region = topology.region(topology.host(host).region)
    return "keystone" if len(region.with_role("keystone")) < 2 else f"keystone-{region.name}"


POLICY: dict[str, Policy] = {
    "mariadb": Policy(lambda t, h: "galera", in_turn=True, drain=True),
    "etcd": Policy(lambda t, h: "etcd", in_turn=True),
    "keystone": Policy(_keystone_lock),
    "haproxy": Policy(lambda t, h: None, splay=SPLAY),
}
ROLE_OF = {"mariadb": "galera", "etcd": "etcd", "keystone": "keystone"}
Waiting = Callable[[str], None]


class Coordinator:
    """Runs one host's actions under the policy; `actions` is built per generation from its topology."""

    def __init__(
        self,
        store: Store,
        keys: Keys,
        host: str,
        root: Path,
        actions: Callable[[Topology], ServiceActions],
        topology: Callable[[], Topology],
        generation: Callable[[], int],
    ) -> None:
        self.store, self.keys, self.host, self.root = store, keys, host, root
        self.make_actions, self.load_topology, self.generation = actions, topology, generation

    def halt(self, service: str, reason: str) -> None:
        """Stop `service`'s rollout everywhere (best effort: etcd may be gone)."""
        with suppress(StoreError):
            self.store.put(self.keys.halt(service), reason.encode())

    def halted(self, service: str) -> str | None:
        """Why `service`'s rollout is stopped, if it is."""
        item = self.store.get(self.keys.halt(service))
        return item.value.decode() if item else None

    def act(self, service: str, action: str, paths: Sequence[str], *, coordinated: bool, waiting: Waiting) -> None:
        """Run `action` on `service`, coordinated by its policy; ActionFailed when it does not come back healthy."""
        topology = self.load_topology()
        actions = self.make_actions(topology)
        policy = POLICY.get(service)
        if not coordinated or policy is None or action not in ("restart", "reload"):
            actions.act(service, action, paths)
            actions.wait_healthy(service, action)
            return
        why = self.halted(service)
        if why is not None:
            raise Halted(service, f"{service}: rollout halted: {why}")
        if policy.splay:
            time.sleep(random.uniform(0, policy.splay))
        if policy.in_turn:
            self._wait_turn(topology, service, waiting)
        name = policy.lock(topology, self.host)
        lock = self.store.lock(self.keys.lock(name), ttl=LOCK_TTL, timeout=LOCK_WAIT) if name else None
        if lock is not None:
            waiting(f"waiting for the {name} lock")
        with lock if lock is not None else nullcontext():
            log.info("%s: %s %s (lock %s)", self.host, action, service, name or "none")
            if service == "mariadb":
                self._galera_gate(topology, actions)
            with self._drained(topology) if policy.drain else nullcontext():
                actions.act(service, action, paths)
                actions.wait_healthy(service, action)
                log.info("%s: %s healthy after %s", self.host, service, action)

    def _wait_turn(self, topology: Topology, service: str, waiting: Waiting) -> None:
        """Until every host of the role before this one (file order) runs this generation or later."""
        role = ROLE_OF[service]
        hosts = [h.name for h in topology.with_role(role)]
        before = hosts[: hosts.index(self.host)] if self.host in hosts else []
        target = self.generation()
        deadline = time.monotonic() + LOCK_WAIT
        while before:
            statuses, _ = self.store.get_prefix(self.keys.statuses)
            behind = [h for h in before if _generation(statuses, self.keys.status(h)) < target]
            if not behind:
                return
            if self.halted(service):
                raise Halted(service, f"{service}: rollout halted while waiting for {', '.join(behind)}")
            if time.monotonic() > deadline:
                raise NotActed(service, f"{service}: {', '.join(behind)} did not take generation {target}")
            waiting(f"waiting for {', '.join(behind)} to run generation {target} first")
            time.sleep(TURN_POLL)

    def _galera_gate(self, topology: Topology, actions: ServiceActions) -> None:
        """Synced, every voter in the component, and a clean leave of this node keeps Primary."""
        state = NodeState.from_rows(wsrep_status(actions.manager.shell))
        voters = len(topology.voters)
        if state.local_state != SYNCED or not state.primary or state.cluster_size != voters:
            seen = f"{state.local_state_comment or 'down'}, {state.cluster_size or 0} of {voters} voters"
            raise NotActed("mariadb", f"mariadb: not restarted: the cluster is not whole ({seen})")
        if not evaluate(Layout.of(topology), [[events.maintenance(self.host)]]).survives:
            raise NotActed("mariadb", f"mariadb: not restarted: a clean leave of {self.host} loses Primary")

    @contextmanager
    def _drained(self, topology: Topology) -> Iterator[None]:
        """The node out of its region's HAProxy for the step (the maintenance file), back once it is Synced."""
        flag = on_disk(self.root, MAINTENANCE)
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text(f"drained by kgt agent for a restart at {time.time():.0f}\n")
        region = topology.region(topology.host(self.host).region)
        proxies = region.with_role("haproxy")
        # A server that is up is checked every `inter`; after its first failed check HAProxy checks
        # it every `fastinter` until `fall` checks failed: then every proxy has moved new clients on.
        bound = max((_marked_down(p.settings.haproxy) for p in proxies), default=0.0) + 0.2
        log.info("%s drained (%s); waiting %.1fs for the proxies to see it", self.host, MAINTENANCE, bound)
        time.sleep(bound)
        try:
            yield
        finally:
            flag.unlink(missing_ok=True)
            log.info("%s undrained", self.host)


def _marked_down(h: HaproxyConfig) -> float:
    """The longest a proxy takes to mark down a server that starts failing its checks."""
    return h.inter + (h.fall - 1) * h.fastinter


def _generation(statuses: dict[str, Item], key: str) -> int:
    item = statuses.get(key)
    if item is None:
        return 0
    try:
        return int(json.loads(item.value)["generation"])
    except (ValueError, KeyError, TypeError):
        return 0
