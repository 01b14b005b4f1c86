"""What a fault should do, from the topology alone: `kgt analyze`'s prediction and the time bounds.

`predict` turns a fault into the outcome the survivability analysis expects (the Galera
component of every node, the database and Keystone state of every region), and
`derive_bounds` into the time limits a client may see, computed from the rendered
configuration (HAProxy `inter × fall`, Galera's EVS timeouts, keepalived's VRRP
master-down interval); each fault kind narrows them (`FaultKind.gap_bounds`). Nothing
here touches a site.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.analysis.model import Scenario
from toolkit.analysis.quorum import Analysis, analyze
from toolkit.drills.faults.base import Fault, Limits, Target, kind_class, kind_of
from toolkit.drills.workloads import WorkloadSettings
from toolkit.errors import UsageError
from toolkit.topology.evs import evs_timeouts
from toolkit.topology.model import Topology

# Extra seconds over a configured bound for a client to notice (one operation's latency and
# the workload's pause between operations).
SLACK = 1.0


def resolve(
    topology: Topology,
    kind: str,
    region: str | None = None,
    host: str | None = None,
    rtt: float | None = None,
    between: tuple[str, str] | None = None,
    kill: bool = False,
) -> Fault:
    """A fault with its defaults filled in from the topology; UsageError for a bad target.

    Defaults: the last region in the file; node-loss its first Galera node; proxy-loss
    the MASTER of its first VIP; wan-degrade 200 ms between all regions.
    """
    return resolve_target(topology, kind, Target(region=region, host=host, rtt=rtt, between=between, kill=kill))


def resolve_target(topology: Topology, kind: str, target: Target) -> Fault:
    """`resolve` for a `Target` (what a fault kind's options asked for)."""
    cls = kind_class(kind)
    names = [r.name for r in topology.regions]
    if target.region is not None and target.region not in names:
        raise UsageError(f"--region: unknown region '{target.region}' (regions: {', '.join(names)})")
    if target.host is not None and target.host not in {h.name for h in topology.hosts}:
        raise UsageError(f"--host: unknown host '{target.host}'")
    return cls.resolve(topology, target)


@dataclass(frozen=True)
class Prediction:
    """What the analysis expects while the fault holds."""

    scenario: str | None  # the `kgt analyze` scenario name, None when the fault is not a Galera failure
    kind: str  # the scenario kind, or "healthy"
    survives: bool
    components: tuple[dict[str, Any], ...]
    regions: dict[str, dict[str, str]]  # region -> {"database": …, "keystone": …}
    nodes: dict[str, str]  # Galera node -> Primary | non-Primary | down
    fixes: tuple[str, ...] = field(default=())
    flags: tuple[str, ...] = field(default=())  # what is wrong with the topology, for people

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return {
            "scenario": self.scenario,
            "kind": self.kind,
            "survives": self.survives,
            "components": list(self.components),
            "regions": self.regions,
            "nodes": self.nodes,
            "fixes": list(self.fixes),
            "flags": list(self.flags),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        """Inverse of `to_json`."""
        return cls(
            data.get("scenario"),
            str(data.get("kind", "healthy")),
            bool(data.get("survives", True)),
            tuple(data.get("components") or ()),
            dict(data.get("regions") or {}),
            dict(data.get("nodes") or {}),
            tuple(data.get("fixes") or ()),
            tuple(data.get("flags") or ()),
        )


def scenario_name(fault: Fault) -> str | None:
    """The `kgt analyze` scenario a fault is an instance of."""
    return kind_of(fault).scenario()


def _healthy(topology: Topology) -> Scenario:
    """Everything up: one Primary component of every voter (keystone-loss, proxy-loss, wan-degrade)."""
    from toolkit.analysis.model import Component, RegionOutcome

    hosts = tuple(h.name for h in topology.voters)
    component = Component(tuple(r.name for r in topology.regions), hosts, topology.total_weight, True)
    regions = {
        r.name: RegionOutcome("primary", "writable" if r.with_role("keystone") else "none") for r in topology.regions
    }
    return Scenario("healthy", "healthy", (component,), regions)


def predict(topology: Topology, fault: Fault, analysis: Analysis | None = None) -> Prediction:
    """The predicted outcome of `fault` on `topology`."""
    analysis = analysis or analyze(topology)
    name = scenario_name(fault)
    scenario = next((s for s in analysis.scenarios if s.name == name), None) if name else None
    if scenario is None:
        scenario = _healthy(topology)
    nodes: dict[str, str] = {}
    for host in topology.galera_nodes:
        component = next((c for c in scenario.components if host.name in c.hosts), None)
        nodes[host.name] = "down" if component is None else "Primary" if component.primary else "non-Primary"
    flags = []
    if not scenario.survives:
        flags.append(f"no Primary component survives '{scenario.name}': every region stops accepting writes")
    return Prediction(
        scenario=name,
        kind=scenario.kind,
        survives=scenario.survives,
        components=tuple(
            {"regions": list(c.regions), "hosts": list(c.hosts), "weight": c.weight, "primary": c.primary}
            for c in scenario.components
        ),
        regions={r: {"database": o.database, "keystone": o.keystone} for r, o in scenario.regions.items()},
        nodes=nodes,
        fixes=analysis.fixes if not scenario.survives else (),
        flags=tuple(flags),
    )


@dataclass(frozen=True)
class Bounds:
    """Time limits derived from the configuration (seconds)."""

    haproxy_detection: float  # inter × fall of the proxies
    galera_detection: float  # evs.suspect_timeout + evs.install_timeout
    vrrp_failover: float  # keepalived master-down interval: 3 × advert_int + skew of the first backup
    slack: float
    write_gap: dict[str, float]  # per region: the longest client-visible write gap allowed while faulted
    token_gap: dict[str, float]  # per region: the same for Keystone through the region's endpoint
    vip_move: float | None  # proxy-loss: the VIP must reach another proxy within this
    healthy: float  # after the heal, the site must be healthy again within this
    rtt: float = 0.0  # the WAN round trip the site runs at (kept through the drill)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bounds:
        """Inverse of `to_json` (a report without `rtt` was measured at LAN latency)."""
        return cls(
            **{
                k: data.get(k, 0.0 if k == "rtt" else None)  # type: ignore[arg-type]
                for k in cls.__dataclass_fields__
            }
        )


# Round trips a client pays to notice a failover: a new connection to another region's
# node (TCP, the MariaDB handshake and login) and one locking transaction.
RTTS_PER_FAILOVER = 5


def galera_detection(topology: Topology) -> float:
    """Seconds Galera takes to change its view (evs.suspect_timeout + evs.install_timeout, the slowest node)."""
    evs = [evs_timeouts(topology, h) for h in topology.galera_nodes]
    return max((e["suspect_timeout"] + e["install_timeout"] for e in evs), default=12.5)


def _vrrp_failover(topology: Topology) -> float:
    """keepalived's master-down interval of the slowest VIP (0 without keepalived)."""
    if not topology.with_role("keepalived"):
        return 0.0
    vrrp = 0.0
    for region in topology.regions:
        for vip in region.vips:
            if vip.master is None:
                continue
            ka = topology.host(vip.master).settings.keepalived
            backup_priority = ka.master_priority - 10  # the next proxy in the rotation (render.context)
            vrrp = max(vrrp, 3 * ka.advert_int + (256 - backup_priority) / 256 * ka.advert_int)
    return vrrp


def derive_bounds(topology: Topology, fault: Fault, healthy: float = 90.0, rtt: float = 0.0) -> Bounds:
    """The bounds a drill holds the site to, from the rendered settings and the WAN's round trip.

    Allowed gaps, per region and stream: a region the fault leaves alone may stall no
    longer than HAProxy's detection bound. Where Galera must drop a member first (a
    partition, a lost region or node), the survivors may stall until the view changes
    (suspect + install timeout); where HAProxy must move to a backup, add its detection
    bound; where a VIP must move, the VRRP master-down interval (each fault kind says
    which: `FaultKind.gap_bounds`). The slack for the client to see it is SLACK plus
    `RTTS_PER_FAILOVER` round trips of the WAN (`rtt`, seconds: the delay the site runs
    at, which the drill keeps).
    """
    proxies = topology.with_role("haproxy")
    detection = max((h.settings.haproxy.detection_bound for h in proxies), default=3.0)
    galera = galera_detection(topology)
    vrrp = _vrrp_failover(topology)
    slack = SLACK + RTTS_PER_FAILOVER * rtt
    clients = WorkloadSettings().timeout  # the drill's clients' deadline (no option changes it)
    limits = Limits(tuple(r.name for r in topology.regions), detection, galera, vrrp, slack, clients)
    gaps = kind_of(fault).gap_bounds(limits)
    return Bounds(
        haproxy_detection=detection,
        galera_detection=galera,
        vrrp_failover=round(vrrp, 3),
        slack=round(slack, 3),
        write_gap={k: round(v, 3) for k, v in gaps.write.items()},
        token_gap={k: round(v, 3) for k, v in gaps.token.items()},
        vip_move=round(gaps.vip_move, 3) if gaps.vip_move is not None else None,
        healthy=healthy,
        rtt=rtt,
    )


HEAL_AFTER = 14.0  # the default fault window (s)
OBSERVE = 5.0  # seconds to watch a read-only region serve once it should


def heal_after(topology: Topology, fault: Fault, rtt: float = 0.0) -> float:
    """The default fault window: `HEAL_AFTER`, or long enough to watch a read-only region serve.

    Where the analysis predicts a region's Keystone read-only, the drill judges it from
    when it should serve read-only (Galera's detection bound, then HAProxy's, then the
    slack): the window covers that and `OBSERVE` seconds more.
    """
    prediction = predict(topology, fault)
    if not any(o.get("keystone") == "read-only" for o in prediction.regions.values()):
        return HEAL_AFTER
    b = derive_bounds(topology, fault, rtt=rtt)
    return round(max(HEAL_AFTER, b.galera_detection + b.haproxy_detection + b.slack + OBSERVE), 3)
