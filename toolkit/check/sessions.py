"""Where the verify workload connects (`Target`) and its sessions: open with a deadline, close, read status.

One target per region (a VIP or a Galera node, see `targets`); `connect` opens a session
with every call's deadline and the session variables an operation needs. The workload,
its schema setup and the drills all connect through here, so a test replaces `connect`
once to run them against fake connections.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from toolkit import db
from toolkit.errors import CannotCheck
from toolkit.topology.model import Host, Topology
from toolkit.wsrep import NodeState

CONNECT_TIMEOUT = 2.0  # the longest a connect may take, whatever the deadline of the calls after it


@dataclass(frozen=True)
class Target:
    """Where a region's worker connects: a VIP (HAProxy write port) or a Galera node."""

    region: str
    name: str
    address: str
    port: int
    read_port: int | None = None  # a VIP's reads go to HAProxy's read listener (dirty reads allowed)
    ca: Path | None = None  # the site CA on a TLS site (`Topology.client_ca`)

    def reads(self) -> Target:
        """Where reads go: the read listener of a VIP, else the same endpoint."""
        return replace(self, port=self.read_port) if self.read_port else self

    @property
    def where(self) -> str:
        """`address:port`."""
        return f"{self.address}:{self.port}"


def targets(topology: Topology, through: str) -> list[Target]:
    """One target per region: its first VIP (writes to HAProxy's write port, reads to its read port) or first node."""
    out = []
    for region in topology.regions:
        if through == "vip":
            if not region.vips:
                raise CannotCheck(f"region {region.name} has no VIP: use --through nodes")
            proxies = region.with_role("haproxy") or region.hosts
            vip = region.vips[0]
            haproxy = proxies[0].settings.haproxy
            ca = topology.client_ca
            out.append(Target(region.name, vip.name, str(vip.address), haproxy.write_port, haproxy.read_port, ca))
        elif region.galera_nodes:
            out.append(node_target(topology, region.galera_nodes[0]))
    if not out:
        raise CannotCheck("no region has a Galera node to verify through")
    return out


def node_target(topology: Topology, host: Host) -> Target:
    """A Galera node of `topology` as a target."""
    return Target(host.region, host.name, str(host.address), host.settings.galera.port, ca=topology.client_ca)


def connect(target: Target, user: str, password: str, timeout: float, **session: int) -> Any:
    """A session to `target` with every call's deadline, and `session` variables set."""
    conn = db.connect(
        db.Endpoint(target.address, target.port, user, password, ca=target.ca),
        connect_timeout=min(timeout, CONNECT_TIMEOUT),
        read_timeout=timeout,
        write_timeout=timeout,
    )
    try:
        with conn.cursor() as cur:
            for name, value in session.items():
                cur.execute(f"SET SESSION {name} = %s", (value,))
    except BaseException:
        close(conn)
        raise
    return conn


def close(conn: Any) -> None:
    """Close a session, if any, ignoring errors (it may be broken already)."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def read_status(conn: Any) -> dict[str, Any]:
    """The few wsrep status values a status operation records."""
    s = NodeState.from_rows(db.wsrep_status(conn))
    return {
        "status": s.cluster_status,
        "size": s.cluster_size,
        "state": s.local_state_comment,
        "conf_id": s.conf_id,
        "node": node_name(conn),
    }


def node_name(conn: Any) -> str | None:
    """`@@wsrep_node_name` of the node behind a connection (a VIP may lead anywhere)."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@wsrep_node_name")
        row = cur.fetchone()
    return str(row[0]) if row and row[0] is not None else None
