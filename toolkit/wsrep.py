"""What a Galera node says about itself: its wsrep status and variables read once into `NodeState`, and Galera's
weighted quorum rule (`is_primary`).

Standard library only: `kgt probe galera` imports it on the Nagios probe's light path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

PRIMARY = "Primary"  # wsrep_cluster_status of a node in the Primary component (the one that may commit)

# wsrep_local_state: the node's place in Galera's state machine.
UNDEFINED = 0
JOINING = 1
DONOR_DESYNCED = 2
JOINED = 3
SYNCED = 4
STATE_NAMES = {
    UNDEFINED: "Undefined",
    JOINING: "Joining",
    DONOR_DESYNCED: "Donor/Desynced",
    JOINED: "Joined",
    SYNCED: "Synced",
}

_N = TypeVar("_N", int, float)
_TRUE = frozenset({"ON", "1", "TRUE", "YES"})


def is_primary(weight: int, previous: int) -> bool:
    """Galera's rule: strictly more than half of the last Primary component's weight (an exact half loses)."""
    return 2 * weight > previous


def provider_option(options: str, name: str) -> str | None:
    """One value out of a `wsrep_provider_options` string (`a = 1; b = x; …`)."""
    for item in options.split(";"):
        key, sep, value = item.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


def _number(kind: Callable[[str], _N], value: str | None) -> _N | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    return _number(int, value)


def _float(value: str | None) -> float | None:
    return _number(float, value)


def _on(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().upper() in _TRUE


@dataclass(frozen=True)
class NodeState:
    """One node's wsrep status (and, when given, its wsrep variables), typed.

    A value the node did not report, or reported as text that is not of its type, is None.
    """

    cluster_status: str | None = None  # wsrep_cluster_status: Primary | non-Primary | Disconnected
    local_state: int | None = None  # wsrep_local_state: 1 Joining … 4 Synced
    local_state_comment: str | None = None  # wsrep_local_state_comment: Synced | Donor/Desynced | Initialized | …
    ready: bool | None = None
    connected: bool | None = None
    cluster_size: int | None = None
    cluster_weight: int | None = None  # Galera 4: the weight of the node's component
    conf_id: int | None = None  # as reported: outside a Primary component -1, shown unsigned as 2**64 - 1
    state_uuid: str | None = None  # wsrep_cluster_state_uuid
    gcomm_uuid: str | None = None
    recv_queue: int | None = None  # wsrep_local_recv_queue
    recv_queue_avg: float | None = None
    send_queue: int | None = None  # wsrep_local_send_queue
    flow_control_paused: float | None = None  # fraction of time paused since FLUSH STATUS
    cert_failures: int | None = None  # wsrep_local_cert_failures
    repl_latency: float | None = None  # the average of wsrep_evs_repl_latency (min/avg/max/stddev/samples), s
    incoming_addresses: tuple[str, ...] = ()  # wsrep_incoming_addresses: the members of its component
    # From the variables, when given.
    desync: bool | None = None  # wsrep_desync
    wsrep_on: bool | None = None
    dirty_reads: bool | None = None  # wsrep_dirty_reads
    cluster_name: str | None = None  # wsrep_cluster_name
    segment: int | None = None  # gmcast.segment of wsrep_provider_options

    @classmethod
    def from_rows(cls, status: Mapping[str, str], variables: Mapping[str, str] | None = None) -> NodeState:
        """Read `SHOW GLOBAL STATUS LIKE 'wsrep%'` and `SHOW GLOBAL VARIABLES` answers (name → text, any case)."""
        s = {k.lower(): v for k, v in status.items()}
        v = {k.lower(): val for k, val in (variables or {}).items()}
        latency = (s.get("wsrep_evs_repl_latency") or "").split("/")
        addresses = (a.strip() for a in (s.get("wsrep_incoming_addresses") or "").split(","))
        return cls(
            cluster_status=s.get("wsrep_cluster_status"),
            local_state=_int(s.get("wsrep_local_state")),
            local_state_comment=s.get("wsrep_local_state_comment"),
            ready=_on(s.get("wsrep_ready")),
            connected=_on(s.get("wsrep_connected")),
            cluster_size=_int(s.get("wsrep_cluster_size")),
            cluster_weight=_int(s.get("wsrep_cluster_weight")),
            conf_id=_int(s.get("wsrep_cluster_conf_id")),
            state_uuid=s.get("wsrep_cluster_state_uuid") or None,
            gcomm_uuid=s.get("wsrep_gcomm_uuid") or None,
            recv_queue=_int(s.get("wsrep_local_recv_queue")),
            recv_queue_avg=_float(s.get("wsrep_local_recv_queue_avg")),
            send_queue=_int(s.get("wsrep_local_send_queue")),
            flow_control_paused=_float(s.get("wsrep_flow_control_paused")),
            cert_failures=_int(s.get("wsrep_local_cert_failures")),
            repl_latency=_float(latency[1]) if len(latency) >= 2 else None,
            incoming_addresses=tuple(a for a in addresses if a),
            desync=_on(v.get("wsrep_desync")),
            wsrep_on=_on(v.get("wsrep_on")),
            dirty_reads=_on(v.get("wsrep_dirty_reads")),
            cluster_name=v.get("wsrep_cluster_name") or None,
            segment=_int(provider_option(v.get("wsrep_provider_options", ""), "gmcast.segment")),
        )

    @property
    def primary(self) -> bool:
        """Whether the node is in the Primary component."""
        return self.cluster_status == PRIMARY

    @property
    def state_name(self) -> str | None:
        """The local state's comment, else the name of its number (None when neither is known)."""
        if self.local_state_comment:
            return self.local_state_comment
        return None if self.local_state is None else STATE_NAMES.get(self.local_state)

    @property
    def known_conf_id(self) -> int | None:
        """`conf_id`, but None for the -1 (2**64 - 1 unsigned) of a node outside a Primary component."""
        number = self.conf_id
        return None if number is None or number < 0 or number >= 2**63 else number
