"""`kgt lab status`: per host, its services, wsrep state and the VIPs it holds.

Which services a host runs comes from the service table (`toolkit.services.ROLE_SERVICES`);
whether one runs is the same pid-file test `LabServices` uses, all in one command per host.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from toolkit.lab import services
from toolkit.lab.host import LabHost, alive
from toolkit.lab.network import CUT_CHAIN
from toolkit.services import ROLE_SERVICES
from toolkit.topology.model import Host, Topology
from toolkit.wsrep import NodeState


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
    cut_rules: int = 0  # DROP rules in the lab's cut chain (a partition left behind)
    netem_qdiscs: int = 0  # netem qdiscs on eth0 (delay added inside the container)


WSREP_SHOWN = ("wsrep_cluster_status", "wsrep_local_state_comment", "wsrep_cluster_size")


def _script(names: list[str], *, wsrep: bool, vips: bool) -> str:
    """One shell command that reports everything `host_status` needs, one fact per line.

    One `docker exec` per host, not one per fact: polling the status of a loaded lab
    (a drill waits for health every second) must not add to its load.
    """
    lines = ["echo alive"]
    for name in names:
        lines.append(f"if {alive(name)}; then echo svc {name} 1; else echo svc {name} 0; fi")
    if wsrep:
        wanted = ",".join(f"'{k}'" for k in WSREP_SHOWN)
        query = f"SHOW GLOBAL STATUS WHERE Variable_name IN ({wanted})"
        lines.append(f"mariadb -N -B -e \"{query}\" 2>/dev/null | sed 's/^/wsrep /'")
    if vips:
        lines.append(f"echo addresses $({services.ADDRESSES} 2>/dev/null)")
    lines.append(f"echo cut $(iptables -S {CUT_CHAIN} 2>/dev/null | grep -c -- '-j DROP')")
    lines.append("echo netem $(tc qdisc show dev eth0 2>/dev/null | grep -c netem)")
    return "; ".join(lines) + "; true"


def host_status(topology: Topology, host: Host, *, wsrep: bool = True) -> HostStatus:
    """Inspect one host's container (one command; `wsrep=False` skips the SQL query)."""
    names = [s for role in sorted(host.roles) for s in ROLE_SERVICES.get(role, ())]
    result = LabHost(host.name).run(
        _script(names, wsrep=wsrep and host.has("galera"), vips=host.has("keepalived")), timeout=15
    )
    facts = result.stdout.splitlines() if result.ok else []
    alive = "alive" in facts
    running = dict.fromkeys(names, False)
    state: dict[str, str] = {}
    vips: list[str] = []
    counts = {"cut": 0, "netem": 0}
    for line in facts:
        kind, _, rest = line.partition(" ")
        if kind == "svc" and rest.rpartition(" ")[0] in running:
            running[rest.rpartition(" ")[0]] = rest.endswith(" 1")
        elif kind == "wsrep" and "\t" in rest:
            key, value = rest.split("\t", 1)
            state[key.lower()] = value
        elif kind == "addresses":
            vips = services.vips_in(rest)
        elif kind in counts and rest.strip().isdigit():
            counts[kind] = int(rest)
    shown = "-"
    if host.has("galera") and running.get("mariadb") and wsrep:
        node = NodeState.from_rows(state)
        size = "?" if node.cluster_size is None else node.cluster_size
        shown = f"{node.cluster_status or '?'}/{node.local_state_comment or '?'}/size={size}"
    return HostStatus(
        host.name,
        host.region,
        tuple(sorted(host.roles)),
        running,
        shown,
        tuple(vips),
        alive,
        cut_rules=counts["cut"],
        netem_qdiscs=counts["netem"],
    )


def collect(topology: Topology, *, wsrep: bool = True) -> list[HostStatus]:
    """Status of every host, in parallel."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda h: host_status(topology, h, wsrep=wsrep), topology.hosts))


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
