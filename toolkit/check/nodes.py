"""Probe every Galera node in parallel, each with short deadlines, into `NodeResult`s.

A node is asked for its `wsrep%` status and its `wsrep_provider_options` (for
`gmcast.segment`) as the USAGE-only user kgt_health. Whatever happens — refused,
timed out, access denied — every node of the topology gets exactly one result, and
`probe_all` returns within its deadline (a node still hanging then is a `deadline` error).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit import db
from toolkit.accounts import HEALTH_USER as HEALTH_USER  # where the check and drills read it
from toolkit.topology.model import Host
from toolkit.wsrep import PRIMARY, NodeState


def classify(exc: BaseException) -> str:
    """`db.classify`, with timeouts told apart from other lost connections."""
    name = db.classify(exc)
    if name in ("unreachable", "connection-lost") and "timed out" in str(exc):
        return "timeout"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable"
    return name


def one_line(exc: BaseException) -> str:
    """A pymysql or socket error as one short line without the tuple noise."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        text = f"{args[1]} ({args[0]})"
    else:
        text = str(exc) or exc.__class__.__name__
    return " ".join(text.split())[:200]


def _where(host: Host) -> tuple[str, str, str, int]:
    """The name, region, address and MariaDB port of a Galera node: where a result comes from."""
    return host.name, host.region, str(host.address), host.settings.galera.port


@dataclass(frozen=True)
class NodeResult:
    """What one Galera node said about itself, or why it said nothing.

    `answered` is False when the node could not be asked; then `error_class` is one of
    `unreachable`, `timeout`, `connection-lost`, `deadline` (network: the node or the way
    to it is down), or `access-denied`, `mysql-NNNN`, … (kgt cannot tell).
    """

    host: str
    region: str
    address: str
    port: int
    answered: bool
    error_class: str | None = None
    error: str | None = None
    elapsed: float = 0.0
    cluster_status: str | None = None  # wsrep_cluster_status: Primary | non-Primary | Disconnected
    cluster_size: int | None = None
    cluster_weight: int | None = None  # wsrep_cluster_weight (Galera 4): weight of its component
    state_uuid: str | None = None  # wsrep_cluster_state_uuid
    conf_id: int | None = None  # wsrep_cluster_conf_id
    local_state: str | None = None  # wsrep_local_state_comment: Synced | Donor/Desynced | Joiner | …
    ready: bool | None = None
    connected: bool | None = None
    flow_control_paused: float | None = None  # fraction of time paused since FLUSH STATUS
    recv_queue: int | None = None
    recv_queue_avg: float | None = None
    repl_latency: float | None = None  # average of wsrep_evs_repl_latency, seconds
    gcomm_uuid: str | None = None
    segment: int | None = None  # gmcast.segment
    cluster_name: str | None = None
    members: tuple[str, ...] = field(default=())  # wsrep_incoming_addresses of its component

    @property
    def primary(self) -> bool:
        """Whether the node answered and is in a Primary component."""
        return self.answered and self.cluster_status == PRIMARY

    @property
    def synced(self) -> bool:
        """Whether the node is Primary and Synced (serving consistent reads and writes)."""
        return self.primary and self.local_state == "Synced"

    @classmethod
    def failed(cls, host: Host, error_class: str, error: str, elapsed: float = 0.0) -> NodeResult:
        """A node that could not be asked."""
        return cls(*_where(host), False, error_class, error, round(elapsed, 6))

    @classmethod
    def from_status(
        cls, host: Host, status: Mapping[str, str], variables: Mapping[str, str], elapsed: float = 0.0
    ) -> NodeResult:
        """Build a result from `SHOW GLOBAL STATUS LIKE 'wsrep%'` and the wsrep variables."""
        state = NodeState.from_rows(status, variables)
        return cls(
            *_where(host),
            True,
            elapsed=round(elapsed, 6),
            cluster_status=state.cluster_status,
            cluster_size=state.cluster_size,
            cluster_weight=state.cluster_weight,
            state_uuid=state.state_uuid,
            conf_id=state.known_conf_id,
            local_state=state.local_state_comment,
            ready=state.ready,
            connected=state.connected,
            flow_control_paused=state.flow_control_paused,
            recv_queue=state.recv_queue,
            recv_queue_avg=state.recv_queue_avg,
            repl_latency=state.repl_latency,
            gcomm_uuid=state.gcomm_uuid,
            segment=state.segment,
            cluster_name=state.cluster_name,
            members=state.incoming_addresses,
        )

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready (`members` as a list)."""
        data = asdict(self)
        data["members"] = list(self.members)
        return data


def probe(host: Host, user: str, password: str, timeout: float = 5.0, ca: Path | None = None) -> NodeResult:
    """Ask one node (over TLS verified against `ca` when given); never raises for database or network errors."""
    started = time.monotonic()
    endpoint = db.Endpoint(str(host.address), host.settings.galera.port, user, password, ca=ca)
    conn = None
    try:
        conn = db.connect(endpoint, connect_timeout=min(2.0, timeout), read_timeout=timeout, write_timeout=timeout)
        status = db.wsrep_status(conn)
        with conn.cursor() as cur:
            cur.execute(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                "('wsrep_provider_options', 'wsrep_cluster_name', 'wsrep_node_name')"
            )
            variables = {str(k): "" if val is None else str(val) for k, val in cur.fetchall()}
        return NodeResult.from_status(host, status, variables, time.monotonic() - started)
    except Exception as exc:
        return NodeResult.failed(host, classify(exc), one_line(exc), time.monotonic() - started)
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def probe_all(
    hosts: Iterable[Host], user: str, password: str, timeout: float = 5.0, ca: Path | None = None
) -> list[NodeResult]:
    """Probe every host at once (one daemon thread each); results in the order given.

    Returns after at most about `timeout` seconds: a thread still blocked then is left
    behind (it is a daemon and its socket has its own timeout) and its host is reported
    with error class `deadline`.
    """
    hosts = list(hosts)
    results: dict[int, NodeResult] = {}
    lock = threading.Lock()

    def run(i: int, host: Host) -> None:
        result = probe(host, user, password, timeout, ca)
        with lock:
            results[i] = result

    threads = [
        threading.Thread(target=run, args=(i, h), daemon=True, name=f"probe-{h.name}") for i, h in enumerate(hosts)
    ]
    deadline = time.monotonic() + timeout + 0.5
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return [
            results.get(i) or NodeResult.failed(h, "deadline", f"no answer within {timeout:g}s", timeout)
            for i, h in enumerate(hosts)
        ]
