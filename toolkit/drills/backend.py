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
from toolkit.retry import DeadlineExceeded, poll
from toolkit.topology.model import Host, Topology

Echo = Callable[[str], None]


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
    """The Docker lab, through toolkit.lab (the same service functions `kgt lab up` uses)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def _h(self, host: Host | str) -> LabHost:
        return LabHost(host if isinstance(host, str) else host.name)

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
        """`docker start`, routes, then mariadb (recovered position → IST), health, haproxy,
        keepalived, memcached, keystone, named — the order of `kgt lab up`."""
        steps: dict[str, Any] = {}
        started = time.monotonic()

        def step(name: str, t0: float) -> None:
            steps[name] = round(time.monotonic() - t0, 2)
            echo(f"  heal: {name} ({steps[name]:.1f}s)")

        t0 = time.monotonic()
        stopped = [h for h in hosts if not self._h(h).run("true", timeout=10).ok]
        if stopped:
            result = docker.docker("start", *(h.name for h in stopped), timeout=120)
            if not result.ok:
                raise LabError(f"docker start failed: {result.stderr.strip()[-400:]}")
            for h in stopped:
                # Pid files survive in the container's layer; a reused pid would make start a no-op.
                self._h(h).run("rm -f /run/kgt/*.pid", timeout=15)
        network.route_regions(self.topology)
        step("containers", t0)
        rejoin: dict[str, Any] = {}
        for host in (h for h in hosts if h.has("galera")):
            t0 = time.monotonic()
            if not services.is_synced(self._h(host)):
                rejoin[host.name] = self.restart_node(host)
            step(f"mariadb {host.name}", t0)
        steps["rejoin"] = rejoin
        t0 = time.monotonic()
        for host in (h for h in hosts if h.has("galera")):
            services.start_health(self._h(host), host)
        for host in (h for h in hosts if h.has("garbd")):
            services.start_garbd(self._h(host))
        for host in (h for h in hosts if h.has("haproxy")):
            self.start_service(host, "haproxy")
        for host in (h for h in hosts if h.has("keepalived")):
            self.start_service(host, "keepalived")
        for host in (h for h in hosts if h.has("memcached")):
            services.start_memcached(self._h(host))
        step("health, haproxy, keepalived, memcached", t0)
        t0 = time.monotonic()
        for host in (h for h in hosts if h.has("keystone")):
            self.start_service(host, "keystone")
        for host in (h for h in hosts if h.has("dns")):
            services.start_named(self._h(host))
        step("keystone, named", t0)
        steps["total"] = round(time.monotonic() - started, 2)
        return steps

    # -- services --------------------------------------------------------------------------

    def stop_service(self, host: Host, service: str, *, kill: bool = False) -> None:
        """Signal the service (TERM, or KILL) and wait until its process is gone.

        keepalived runs a VRRP child that, when only its parent is killed, exits cleanly
        and hands its VIPs over at once: a crash kills both (by their pid files) at once.
        """
        h = self._h(host)
        if kill and service == "keepalived":
            h.run(
                "kill -KILL $(cat /run/kgt/keepalived-vrrp.pid /run/kgt/keepalived-main.pid 2>/dev/null) "
                "2>/dev/null; true",
                timeout=15,
            )
        h.stop(service, "KILL" if kill else "TERM", wait=20)

    def start_service(self, host: Host, service: str) -> None:
        """Start and wait (bounded) until it answers."""
        h = self._h(host)
        if service == "haproxy":
            services.start_haproxy(h)
            url = f"http://{host.address}:{host.settings.haproxy.stats_port}/healthz"
            self._wait(h, service, lambda: services.http_ok(url), 30)
        elif service == "keepalived":
            # A keepalived killed with -9 leaves its VIPs behind: drop every VIP of the region first.
            region = self.topology.region(host.region)
            services.start_keepalived(h, stale_vips=[str(v.address) for v in region.vips])
            self._wait(h, service, lambda: h.running("keepalived"), 15)
        elif service == "keystone":
            services.start_keystone(h, host)
            url = f"http://{host.address}:{host.settings.keystone.port}/v3"
            self._wait(h, service, lambda: services.http_ok(url, 5), 120)
        else:
            raise LabError(f"don't know how to start {service}")

    @staticmethod
    def _wait(h: LabHost, service: str, check: Callable[[], object], timeout: float) -> None:
        try:
            poll(check, timeout=timeout, what=f"{service} on {h.name}", interval=0.2, max_interval=1.0)
        except DeadlineExceeded as exc:
            raise LabError(f"{h.name}: {service} not back after {timeout:.0f}s\n{h.log_tail(service)}") from exc

    # -- Galera ----------------------------------------------------------------------------

    def crash_node(self, host: Host) -> None:
        """kill -9 mariadbd."""
        services.stop_galera(self._h(host), kill=True)

    def restart_node(self, host: Host) -> dict[str, Any]:
        """--wsrep-recover, start at the recovered position, wait Synced, read how it joined."""
        h = self._h(host)
        started = time.monotonic()
        if h.running("mariadb"):
            return {"position": None, "method": "none", "seconds": 0.0, "note": "was running"}
        position = services.recover_position(h)
        services.start_galera(h, position=position)
        try:
            poll(lambda: services.is_synced(h), timeout=240, what=f"{host.name} Synced", interval=0.3, max_interval=1.0)
        except DeadlineExceeded as exc:
            raise LabError(f"{host.name}: not Synced 240s after restart\n{h.log_tail('mariadb')}") from exc
        log = h.run(
            'awk \'/^== start /{buf=""} {buf=buf $0 "\\n"} END{printf "%s", buf}\' /var/log/kgt/mariadb.log', timeout=30
        ).stdout
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
