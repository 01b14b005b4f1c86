"""What the monitors and the nemesis show: detection times, the VIP move, node states, the heal."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from toolkit.check.history import Done
from toolkit.drills.checker.history import NOT_CLIENTS, DrillHistory, node_state, whole


@dataclass(frozen=True)
class VipMove:
    """The fault's VIPs seen on another host: when (after the injection returned) and where."""

    vips: list[str]
    source: str | None
    to: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """{"vips", "from", "to", "seconds"}."""
        return {"vips": self.vips, "from": self.source, "to": self.to, "seconds": self.seconds}


@dataclass(frozen=True)
class Detection:
    """Seconds from the fault to the first sign of it, per observer (None: never seen)."""

    galera: float | None = None  # a view change (non-Primary or smaller)
    haproxy: float | None = None  # a server not UP
    vip: float | None = None  # the VIP on another host
    client: float | None = None  # a client's failure
    vip_move: VipMove | None = None

    def to_json(self) -> dict[str, float | None]:
        """The report's `measurements.detect`."""
        return {"galera": self.galera, "haproxy": self.haproxy, "vip": self.vip, "client": self.client}


def _first_changes(h: DrillHistory, f0: float) -> tuple[float | None, float | None]:
    """The first Galera view change and the first HAProxy server down, in the fault window."""
    galera = haproxy = None
    for d in h.samples:
        if d.t1 < f0 or (h.h0 is not None and d.t1 > h.h0) or d.type != "ok" or not isinstance(d.value, dict):
            continue
        if d.start.f == "galera" and galera is None:
            if d.value.get("status") != "Primary" or d.value.get("size") != h.expected_size:
                galera = round(d.t1 - f0, 3)
        elif d.start.f == "haproxy" and haproxy is None and any(v != "UP" for v in d.value.values()):
            haproxy = round(d.t1 - f0, 3)
    return galera, haproxy


def _vip_move(h: DrillHistory, f0: float) -> VipMove | None:
    """Measured from the return of the stop command (the proxy is gone by then), not its start:
    `docker exec` latency under load is tooling, not failover."""
    moved = h.kind.moved_vips(h.inject.value or {}) if h.inject else []
    for d in h.samples:
        if d.start.f != "vip" or d.type != "ok" or d.t1 < f0 or d.start.host == h.fault.host:
            continue
        if set(moved) & set(d.value or []):
            seconds = round(max(0.0, d.t1 - (h.f1 if h.f1 is not None else f0)), 3)
            return VipMove(moved, h.fault.host, d.start.host, seconds)
    return None


def detect(h: DrillHistory) -> Detection:
    """When each observer first saw the fault."""
    f0 = h.f0
    if f0 is None:
        return Detection()
    galera, haproxy = _first_changes(h, f0)
    move = _vip_move(h, f0)
    clients = [
        d
        for d in h.done
        if d.end is not None
        and d.type in ("fail", "info")
        and d.t1 >= f0
        and not d.start.process.startswith(NOT_CLIENTS)
    ]
    client = round(min(d.t1 for d in clients) - f0, 3) if clients else None
    return Detection(galera, haproxy, None if move is None else move.seconds, client, move)


@dataclass(frozen=True)
class NodeStates:
    """Each Galera node's state at the end of the fault window, and every sample for the timeline."""

    observed: dict[str, str]  # node -> Primary | non-Primary | down | unknown
    samples: dict[str, list[tuple[float, str]]] = field(default_factory=dict)


def node_states(h: DrillHistory) -> NodeStates:
    """The last state each node reported in the fault window ("unknown": none)."""
    galera = h.galera_samples()
    samples: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for d in galera:
        samples[d.start.host].append((round(d.t1, 3), node_state(d)))
    observed: dict[str, str] = {}
    for node in h.galera_nodes:
        before = [d for d in galera if d.start.host == node and d.t1 <= h.window_end and (h.f0 is None or d.t1 >= h.f0)]
        observed[node] = node_state(before[-1]) if before else "unknown"
    return NodeStates(observed, dict(samples))


@dataclass(frozen=True)
class HealStats:
    """How the heal went (seconds after it began) and how restarted nodes rejoined."""

    duration: float | None
    resync: float | None  # every node Primary/Synced/whole again
    healthy: float | None  # the site healthy again
    rejoin: dict[str, Any]  # node -> {"position", "method", "seconds"}
    attempts: int = 1  # heal attempts it took (more than one: retried)
    errors: tuple[str, ...] = ()  # the failed attempts before

    def to_json(self) -> dict[str, Any]:
        """The report's `measurements.heal`."""
        return {"duration": self.duration, "resync": self.resync, "healthy": self.healthy, "rejoin": self.rejoin}


def _resync(h: DrillHistory) -> float | None:
    """When every node's latest sample since the heal said Primary, Synced, whole."""
    if h.h0 is None:
        return None
    latest: dict[str, Done] = {}
    for d in h.galera_samples():
        latest[d.start.host] = d
        if d.t1 < h.h0:
            continue
        if len(latest) == len(h.galera_nodes) and all(
            x.t0 >= h.h0 and x.type == "ok" and whole(x.value, h.expected_size) for x in latest.values()
        ):
            return round(d.t1 - h.h0, 3)
    return None


def heal_stats(h: DrillHistory) -> HealStats:
    """The heal's duration, the resync and healthy times, the rejoins."""
    healed = h.heal is not None and h.heal.type == "ok"
    value = (h.heal.value if h.heal is not None and healed else None) or {}
    healthy = None
    if h.healthy is not None and h.healthy.type == "ok" and h.h0 is not None:
        healthy = round(h.healthy.t1 - h.h0, 3)
    return HealStats(
        duration=round(h.h1 - h.h0, 3) if h.h0 is not None and h.h1 is not None else None,
        resync=_resync(h),
        healthy=healthy,
        rejoin=value.get("rejoin") or {},
        attempts=int(value.get("attempts", 1)),
        errors=tuple(value.get("errors", ())),
    )


def _t(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def timeline(h: DrillHistory) -> dict[str, Any]:
    """The report's `timeline`: when things happened (seconds since the history began)."""
    return {
        "start_wall": h.ops[0].wall if h.ops else None,
        "workload_start": round(h.workload_start, 3),
        "fault_at": _t(h.f0),
        "fault_wall": h.inject.start.wall if h.inject else None,
        "fault_injected": _t(h.f1),
        "heal_at": _t(h.h0),
        "healed": _t(h.h1),
        "healthy": None if h.healthy is None or h.healthy.end is None else round(h.healthy.t1, 3),
        "end": round(h.end, 3),
        "interrupted": None if h.interrupted is None else round(h.interrupted.t0, 3),
    }
