"""How a drill reaches a site: the `Backend` interface and the Docker lab's implementation.

The nemesis only calls these primitives, so a site can plug in its own commands (ssh,
its orchestrator, its firewall) by implementing `Backend`. Every heal primitive is
idempotent and safe to call after a partial injection: the nemesis calls it in a
`finally`, whatever happened before.
"""

from __future__ import annotations

import abc
import json
import re
import time
from collections.abc import Callable
from typing import Any

from toolkit.errors import LabError
from toolkit.lab import docker, network, services
from toolkit.lab import status as lab_status
from toolkit.lab.host import LabHost
from toolkit.lab.network import WanSpec
from toolkit.lab.services import LabServices
from toolkit.services import REJOIN, SERVICES, galera_args
from toolkit.topology.model import Host, Topology

Echo = Callable[[str], None]

# What a region's heal starts once its Galera nodes are back, step by step, in this order
# (each step's name is a key of the heal's record).
HEAL_STEPS = (
    ("health, haproxy, keepalived, memcached", ("kgt-health", "garbd", "haproxy", "keepalived", "memcached")),
    ("keystone, named", ("keystone", "named")),
)


class Backend(abc.ABC):
    """The primitives a nemesis needs from a site."""

    topology: Topology

    @abc.abstractmethod
    def problems(self) -> list[str]:
        """What keeps the site's machinery from being healthy: services down, VIPs misplaced, WAN faults left."""

    @abc.abstractmethod
    def cut(self, region: str) -> None:
        """Cut `region` off from every other region, both ways; its hosts keep running."""

    @abc.abstractmethod
    def heal_network(self) -> None:
        """Remove every cut, delay and loss the drill added between regions; keep the site's own WAN."""

    @abc.abstractmethod
    def wan_rtt(self) -> float:
        """The round trip (s) the site's WAN adds between regions, which a drill keeps (0 on a LAN)."""

    @abc.abstractmethod
    def degrade_wan(self, spec: WanSpec) -> None:
        """Add delay/loss between regions."""

    @abc.abstractmethod
    def stop_hosts(self, hosts: list[Host]) -> None:
        """Power the hosts off (every process dies, nothing is flushed)."""

    @abc.abstractmethod
    def start_hosts(self, hosts: list[Host], echo: Echo) -> dict[str, Any]:
        """Power the hosts on and start their services in dependency order; return what happened."""

    @abc.abstractmethod
    def stop_service(self, host: Host, service: str, *, kill: bool = False) -> None:
        """Stop one service (haproxy, keepalived, keystone) on a host; `kill` for kill -9."""

    @abc.abstractmethod
    def start_service(self, host: Host, service: str) -> None:
        """Start one service again and wait until it answers."""

    @abc.abstractmethod
    def crash_node(self, host: Host) -> None:
        """kill -9 the Galera node's mariadbd."""

    @abc.abstractmethod
    def restart_node(self, host: Host) -> dict[str, Any]:
        """Recover the crashed node's position, start it, wait until Synced.

        Returns {"position": "uuid:seqno"|None, "method": "IST"|"SST"|"none"|"unknown", "seconds": s}.
        """

    @abc.abstractmethod
    def vips_held(self, host: Host) -> list[str]:
        """The VIP addresses the host holds on its interfaces now."""

    @abc.abstractmethod
    def dirty_reads(self, host: Host) -> bool | None:
        """Whether the Galera node has wsrep_dirty_reads=ON globally (None: cannot tell)."""


def transfer_method(log: str) -> str:
    """How a joiner got its state, from its MariaDB log since its last start.

    MariaDB runs the SST script even for an IST and logs "SST received" either way, so
    those lines prove nothing. What does: the script's own "<method> IST completed on
    joiner" / "<method> SST completed on joiner", and Galera's "IST uuid:U f: F" line,
    where an all-zero U (or F = 0) means the joiner had no state and got a full SST.
    """
    if re.search(r"\bIST completed on joiner", log):
        return "IST"
    if re.search(r"\bSST completed on joiner", log):
        return "SST"
    ist = re.search(r"IST uuid:([0-9a-f-]{36}) f: (-?\d+)", log)
    if ist:
        return "SST" if set(ist.group(1)) <= {"0", "-"} or int(ist.group(2)) <= 0 else "IST"
    if re.search(r"IST received", log):
        return "IST"
    if re.search(r"State transfer not required|IST not required", log, re.I):
        return "none"
    return "unknown"


class LabBackend(Backend):
    """The Docker lab, its services driven through `LabServices` (the interface `kgt lab up` uses)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def _h(self, host: Host | str) -> LabHost:
        return LabHost(host if isinstance(host, str) else host.name)

    def _services(self, host: Host) -> LabServices:
        return LabServices(self.topology, host)

    # -- health --------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Containers and services down, VIPs not on (only) their MASTER, cuts or delays left."""
        out: list[str] = []
        rows = lab_status.collect(self.topology, wsrep=False)  # Galera is judged over SQL, not here
        for row in rows:
            if not row.container:
                out.append(f"{row.host}: container not running")
                continue
            down = [name for name, ok in row.services.items() if not ok]
            if down:
                out.append(f"{row.host}: {', '.join(down)} not running")
        held = {row.host: set(row.vips) for row in rows}
        for vip in self.topology.vips:
            if vip.master is None:
                continue
            holders = sorted(h for h, vips in held.items() if str(vip.address) in vips)
            if holders != [vip.master]:
                out.append(
                    f"VIP {vip.name} {vip.address} held by {', '.join(holders) or 'nobody'}, "
                    f"not its MASTER {vip.master} alone"
                )
        out += self._wan_problems([r for r in rows if r.container])
        return out

    def _wan_problems(self, rows: list[lab_status.HostStatus]) -> list[str]:
        """Cuts, and delay or loss beyond the lab's WAN setting (`kgt lab wan`), which is the site's normal."""
        setting = network.setting()
        found = [
            f"{r.host}: WAN fault left ({r.cut_rules} cut rules, {r.netem_qdiscs} netem qdiscs)"
            for r in rows
            if r.cut_rules or (r.netem_qdiscs and setting is None)
        ]
        config = network.router().run(f"cat {network.WAN_CONFIG}", timeout=15)
        if config.ok:
            try:
                rules = json.loads(config.stdout).get("rules") or []
            except ValueError:
                rules = []
            expected = [setting.rule()] if setting is not None else []
            if rules != expected:
                found.append(
                    f"WAN router: {len(rules)} delay/loss rules left beyond the lab's WAN setting "
                    f"(`kgt lab wan --clear`)"
                )
        return found

    def wan_rtt(self) -> float:
        """The round trip of the lab's WAN setting (`kgt lab wan --rtt`), 0 without one."""
        setting = network.setting()
        return setting.rtt if setting is not None else 0.0

    # -- network -------------------------------------------------------------------------

    def cut(self, region: str) -> None:
        """iptables chain KGT-CUT inside the region's containers."""
        network.cut(self.topology, region)

    def heal_network(self) -> None:
        """Flush every cut and delay (each host tried even if one fails), then restore the lab's WAN setting."""
        network.heal(self.topology)

    def degrade_wan(self, spec: WanSpec) -> None:
        """netem where the kernel has it, else the WAN router."""
        network.apply_wan(self.topology, spec)

    # -- hosts -----------------------------------------------------------------------------

    def stop_hosts(self, hosts: list[Host]) -> None:
        """`docker stop -t 1`: SIGTERM reaches only tini's child, so services die like on power loss."""
        result = docker.docker("stop", "-t", "1", *(h.name for h in hosts), timeout=60)
        if not result.ok:
            raise LabError(f"docker stop failed: {result.stderr.strip()[-400:]}")

    def start_hosts(self, hosts: list[Host], echo: Echo) -> dict[str, Any]:
        """`docker start`, routes and firewall, then etcd, mariadb (recovered position → IST),
        health, haproxy, keepalived, memcached, keystone, named — the order of `kgt lab up`."""
        steps: dict[str, Any] = {}
        started = time.monotonic()

        def step(name: str, t0: float) -> None:
            steps[name] = round(time.monotonic() - t0, 2)
            echo(f"  heal: {name} ({steps[name]:.1f}s)")

        t0 = time.monotonic()
        self._power_on(hosts)
        step("containers", t0)
        members = [h for h in hosts if h.has("etcd")]
        if members:
            # Every member at once, then each back (started already: it waits): members that were
            # all down need each other's votes.
            t0 = time.monotonic()
            for host in members:
                self._services(host).start("etcd")
            for host in members:
                self.start_service(host, "etcd")
            step("etcd", t0)
        rejoin: dict[str, Any] = {}
        for host in (h for h in hosts if h.has("galera")):
            t0 = time.monotonic()
            if not self._services(host).healthy("mariadb"):
                rejoin[host.name] = self.restart_node(host)
            step(f"mariadb {host.name}", t0)
        steps["rejoin"] = rejoin
        for label, names in HEAL_STEPS:
            t0 = time.monotonic()
            for name in names:
                for host in (h for h in hosts if h.has(SERVICES[name].role)):
                    self.start_service(host, name)
            step(label, t0)
        steps["total"] = round(time.monotonic() - started, 2)
        return steps

    def _power_on(self, hosts: list[Host]) -> None:
        """`docker start` the stopped containers (stale pid files removed), then route their regions."""
        stopped = [h for h in hosts if not self._h(h).run("true", timeout=10).ok]
        if stopped:
            result = docker.docker("start", *(h.name for h in stopped), timeout=120)
            if not result.ok:
                raise LabError(f"docker start failed: {result.stderr.strip()[-400:]}")
            for h in stopped:
                # Pid files survive in the container's layer; a reused pid would make start a no-op.
                self._h(h).run("rm -f /run/kgt/*.pid", timeout=15)
                # A new network namespace: the host's firewall is loaded again, as at a real boot.
                network.load_firewall(self.topology, h)
        network.route_regions(self.topology)

    # -- services --------------------------------------------------------------------------

    def stop_service(self, host: Host, service: str, *, kill: bool = False) -> None:
        """Signal the service (TERM, or KILL with its children) and wait until its process is gone."""
        self._services(host).stop(service, kill=kill)

    def start_service(self, host: Host, service: str) -> None:
        """Clear what a crash of it left, start it and wait (its `back` gate) until it answers."""
        self._services(host).bring_back(service)

    # -- Galera ----------------------------------------------------------------------------

    def crash_node(self, host: Host) -> None:
        """kill -9 mariadbd."""
        self._services(host).kill("mariadb")

    def restart_node(self, host: Host) -> dict[str, Any]:
        """--wsrep-recover, start at the recovered position, wait Synced, read how it joined."""
        m = self._services(host)
        started = time.monotonic()
        if m.running("mariadb"):
            return {"position": None, "method": "none", "seconds": 0.0, "note": "was running"}
        position = services.recover_position(m.shell)
        m.start("mariadb", *galera_args(position=position))
        m.wait_healthy("mariadb", REJOIN)
        log = m.log_since_start("mariadb")
        return {"position": position, "method": transfer_method(log), "seconds": round(time.monotonic() - started, 2)}

    # -- observation -----------------------------------------------------------------------

    def vips_held(self, host: Host) -> list[str]:
        """/32 addresses on the container's interfaces (`ip -j addr`)."""
        region = {str(v.address) for v in self.topology.region(host.region).vips}
        return [a for a in services.held_vips(self._h(host)) if a in region]

    def dirty_reads(self, host: Host) -> bool | None:
        """@@global.wsrep_dirty_reads through the local socket."""
        result = self._h(host).sql("SELECT @@global.wsrep_dirty_reads", timeout=10)
        if not result.ok:
            return None
        return result.stdout.strip() in ("1", "ON")
