"""`kgt lab status`: per host, its services, wsrep state and the VIPs it holds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from toolkit.lab import services
from toolkit.lab.host import LabHost
from toolkit.topology.model import Host, Topology

ROLE_SERVICES = {
    "galera": ("mariadb", "kgt-health"),
    "garbd": ("garbd",),
    "haproxy": ("haproxy",),
    "keepalived": ("keepalived",),
    "keystone": ("keystone",),
    "memcached": ("memcached",),
    "dns": ("named",),
}


@dataclass(frozen=True)
class HostStatus:
    """What one container shows."""

    host: str
    region: str
    roles: tuple[str, ...]
    services: dict[str, bool]
    wsrep: str
    vips: tuple[str, ...]
    container: bool


def host_status(topology: Topology, host: Host) -> HostStatus:
    """Inspect one host's container."""
    h = LabHost(host.name)
    alive = h.run("true", timeout=10).ok
    names = [s for role in sorted(host.roles) for s in ROLE_SERVICES.get(role, ())]
    running = {name: alive and h.running(name) for name in names}
    wsrep = "-"
    if host.has("galera") and running.get("mariadb"):
        s = services.galera_status(h)
        state = f"{s.get('wsrep_cluster_status', '?')}/{s.get('wsrep_local_state_comment', '?')}"
        wsrep = f"{state}/size={s.get('wsrep_cluster_size', '?')}"
    vips = tuple(services.held_vips(h)) if alive and host.has("keepalived") else ()
    return HostStatus(host.name, host.region, tuple(sorted(host.roles)), running, wsrep, vips, alive)


def collect(topology: Topology) -> list[HostStatus]:
    """Status of every host, in parallel."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda h: host_status(topology, h), topology.hosts))


def table(rows: list[HostStatus]) -> str:
    """A table for people."""
    header = ("HOST", "REGION", "ROLES", "SERVICES", "WSREP", "VIPS")
    lines = [header]
    for r in rows:
        svc = (
            " ".join(f"{n}:{'up' if ok else 'DOWN'}" for n, ok in r.services.items()) if r.container else "NO CONTAINER"
        )
        lines.append((r.host, r.region, ",".join(r.roles), svc, r.wsrep, ",".join(r.vips) or "-"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)
