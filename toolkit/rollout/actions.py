"""What an agent does to a service once its files are in place, and how it tells the service is healthy again.

A manifest names per file a service and an action: `restart`, `reload` (HAProxy,
keepalived and BIND re-read their files without dropping connections), `apply` (the
firewall and sysctl are loaded from the file), `none` (read at the next use: the SST
settings, the topology). `ServiceActions` runs each through a `toolkit.services`
`ServiceManager` — systemd on a real host (`SystemdServices`), the lab's pid files inside
a lab container — so health checks and their timeouts are the table's, as for lab boot.

Which restarts are coordinated across hosts is `toolkit.rollout.coordinate`.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from toolkit import services
from toolkit.errors import ActionFailed, KgtError
from toolkit.rollout.apply import on_disk
from toolkit.services import Gate, ServiceManager
from toolkit.topology.model import Host, Topology

ACTIONS = ("restart", "reload", "apply", "none")
# The order a generation's services are acted on: the firewall first (a new flow must be open
# before the service that uses it), then the database, its health endpoint, and the rest.
ORDER = (
    "nftables",
    "sysctl",
    "etcd",
    "mariadb",
    "kgt-health",
    "garbd",
    "haproxy",
    "keepalived",
    "memcached",
    "keystone",
    "named",
)
EXIT_GRACE = 5.0  # s a service just started may take to show its process (its pid file)
HEALTH_GATE = Gate(60)  # how long a service without a `back` gate of its own may take to be healthy
UNITS = {"named": "named", "kgt-health": "kgt-health"}  # systemd unit names that differ from the service's


def order_of(service: str) -> int:
    """Where `service` comes in `ORDER` (unknown ones last)."""
    return ORDER.index(service) if service in ORDER else len(ORDER)


class ServiceActions:
    """Runs a generation's actions on this host through a `ServiceManager`."""

    def __init__(self, manager: ServiceManager, root: Path, *, can_sysctl: bool = True) -> None:
        self.manager = manager
        self.root = root
        self.can_sysctl = can_sysctl  # a lab container's /proc/sys is read-only: the lab sets none

    def act(self, service: str, action: str, paths: Sequence[str]) -> None:
        """Run `action` on `service` for its changed `paths`; ActionFailed with the reason."""
        if action == "none":
            return
        if action == "apply":
            for path in paths:
                self._apply(service, path)
            return
        if service not in services.SERVICES:
            raise ActionFailed(
                service, f"{service}: kgt does not drive this service (files in place, nothing restarted)"
            )
        m = self.manager
        try:
            if not m.running(service):
                m.start(service)
            elif action == "reload":
                m.reload(service)
            else:
                m.restart(service)
        except KgtError as exc:
            raise ActionFailed(service, f"{service}: {action} failed: {exc}") from None

    def _apply(self, service: str, path: str) -> None:
        file = shlex.quote(str(on_disk(self.root, path)))
        if service == "nftables":
            command = f"nft -f {file}"
        elif service == "sysctl":
            if not self.can_sysctl:
                return
            command = f"sysctl -q -p {file}"
        else:
            raise ActionFailed(service, f"{service}: no way to apply {path}")
        result = self.manager.shell.run(command, timeout=60)
        if not result.ok:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise ActionFailed(service, f"{service}: `{command}` failed: {said[0][:300]}")

    def wait_healthy(self, service: str, action: str) -> None:
        """Wait (bounded by the table's gate) until `service` passes its health check; ActionFailed if not."""
        if action in ("none", "apply") or service not in services.SERVICES:
            return
        gate = services.SERVICES[service].back or HEALTH_GATE
        m, exited, seen = self.manager, [], []
        started = time.monotonic()

        def settled() -> bool:
            if m.running(service):
                seen.append(True)
            elif seen or time.monotonic() - started > EXIT_GRACE:
                exited.append(True)  # it ran and stopped, or never came up: it will not become healthy
                return True
            return m.healthy(service)

        spec = services.SERVICES[service]
        what = spec.health.what(m) if spec.health is not None else f"{service} running"
        try:
            m.wait_until(settled, what=what, service=service, gate=gate)
        except KgtError as exc:
            raise ActionFailed(service, f"{service}: not healthy after {action}: {str(exc).splitlines()[0]}") from None
        if exited:
            tail = " | ".join(m.log_tail(service, 3).strip().splitlines())[-300:]
            raise ActionFailed(service, f"{service}: exited after {action}: {tail or 'no log'}")


class SystemdServices(ServiceManager):
    """A real host's services through systemd (`systemctl`, `journalctl`)."""

    error: ClassVar[type[KgtError]] = ActionFailed

    def __init__(self, topology: Topology, host: Host, shell: services.Shell) -> None:
        super().__init__(topology, host, shell)

    def _unit(self, name: str) -> str:
        return UNITS.get(name, name)

    def _systemctl(self, *args: str) -> None:
        result = self.shell.run("systemctl " + " ".join(shlex.quote(a) for a in args), timeout=120)
        if not result.ok:
            raise ActionFailed(args[-1], f"systemctl {' '.join(args)}: {result.stderr.strip()[-300:]}")

    def start(self, name: str, *args: str) -> None:
        """`systemctl start` (a unit's arguments are its own: `args` are not passed)."""
        self._systemctl("start", self._unit(name))

    def stop(self, name: str, *, kill: bool = False) -> None:
        """`systemctl stop`, or `systemctl kill -s KILL`."""
        if kill:
            self._systemctl("kill", "-s", "KILL", self._unit(name))
        else:
            self._systemctl("stop", self._unit(name))

    def restart(self, name: str, *args: str) -> None:
        """`systemctl restart`."""
        self._systemctl("restart", self._unit(name))

    def reload(self, name: str) -> None:
        """`systemctl reload-or-restart` (HAProxy, keepalived and BIND reload gracefully)."""
        self._systemctl("reload-or-restart", self._unit(name))

    def running(self, name: str) -> bool:
        """`systemctl is-active`."""
        return self.shell.run(f"systemctl is-active --quiet {shlex.quote(self._unit(name))}", timeout=30).ok

    def signal(self, name: str, signal: str) -> None:
        """`systemctl kill -s SIGNAL`."""
        self._systemctl("kill", "-s", signal, self._unit(name))

    def log_tail(self, name: str, lines: int = 15) -> str:
        """`journalctl -u UNIT -n N`."""
        unit = shlex.quote(self._unit(name))
        return self.shell.run(f"journalctl -u {unit} -n {lines} --no-pager", timeout=30).stdout
