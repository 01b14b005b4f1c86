"""The faults a drill injects, as data: what each one is, what `kgt analyze` predicts, which bounds hold.

A `Fault` names a kind and its target; `predict` turns it into the outcome the
survivability analysis expects (the Galera component of every node, the database and
Keystone state of every region), and `derive_bounds` into the time limits a client may
see, computed from the rendered configuration (HAProxy `inter × fall`, Galera's EVS
timeouts, keepalived's VRRP master-down interval). Nothing here touches a site.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.analysis.model import Scenario
from toolkit.analysis.quorum import Analysis, analyze
from toolkit.errors import UsageError
from toolkit.topology.evs import evs_timeouts
from toolkit.topology.model import Topology

KINDS = ("region-partition", "region-loss", "keystone-loss", "proxy-loss", "node-loss", "wan-degrade")
# The standard set `kgt drill all` runs, in this order.
STANDARD = ("region-partition", "region-loss", "keystone-loss", "proxy-loss", "node-loss", "wan-degrade")
# Extra seconds over a configured bound for a client to notice (one operation's latency and
# the workload's pause between operations).
SLACK = 1.0


@dataclass(frozen=True)
class Fault:
    """One fault: its kind and target (a region, a host, or a WAN condition)."""

    kind: str
    region: str | None = None
    host: str | None = None
    rtt: float | None = None  # wan-degrade: seconds
    between: tuple[str, str] | None = None  # wan-degrade: only between these regions
    kill: bool = False  # proxy-loss: kill -9 instead of a graceful stop

    def describe(self) -> str:
        """One line for people: `region-partition r3`, `node-loss r2-db1`, …"""
        if self.kind == "wan-degrade":
            where = ",".join(self.between) if self.between else "all regions"
            return f"wan-degrade rtt {round((self.rtt or 0) * 1000)}ms between {where}"
        target = self.host if self.kind in ("node-loss", "proxy-loss") else self.region
        return f"{self.kind} {target}" + (" (kill -9)" if self.kill else "")

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        data = asdict(self)
        data["between"] = list(self.between) if self.between else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Inverse of `to_json`."""
        between = data.get("between")
        return cls(
            kind=str(data["kind"]),
            region=data.get("region"),
            host=data.get("host"),
            rtt=data.get("rtt"),
            between=(str(between[0]), str(between[1])) if between else None,
            kill=bool(data.get("kill")),
        )

    @property
    def regions(self) -> tuple[str, ...]:
        """Regions the fault touches directly (watched closely by the monitors)."""
        if self.between:
            return self.between
        return (self.region,) if self.region else ()


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
    if kind not in KINDS:
        raise UsageError(f"unknown drill '{kind}' (drills: {', '.join(KINDS)})")
    names = [r.name for r in topology.regions]
    if region is not None and region not in names:
        raise UsageError(f"--region: unknown region '{region}' (regions: {', '.join(names)})")
    if host is not None and host not in {h.name for h in topology.hosts}:
        raise UsageError(f"--host: unknown host '{host}'")
    if kind == "wan-degrade":
        if between is not None and (len(set(between)) != 2 or not set(between) <= set(names)):
            raise UsageError(f"--between: want two different regions of {', '.join(names)}")
        return Fault(kind, rtt=0.2 if rtt is None else rtt, between=between)
    if kind == "node-loss":
        if host is None:
            nodes = topology.region(region or names[-1]).galera_nodes
            if not nodes:
                raise UsageError(f"region {region or names[-1]} has no Galera node to lose; give --host")
            host = nodes[0].name
        if not topology.host(host).has("galera"):
            raise UsageError(f"--host: {host} is not a Galera node")
        return Fault(kind, region=topology.host(host).region, host=host)
    region = region or (topology.host(host).region if host else names[-1])
    target = topology.region(region)
    if kind == "keystone-loss" and not target.with_role("keystone"):
        raise UsageError(f"region {region} has no Keystone host to lose")
    if kind == "proxy-loss":
        if host is None:
            if not target.vips or not target.vips[0].master:
                raise UsageError(f"region {region} has no VIP held by keepalived; give --host")
            host = target.vips[0].master
        proxy = topology.host(host)
        if proxy.region != region or not proxy.has("haproxy"):
            raise UsageError(f"--host: {host} is not a proxy of region {region}")
        return Fault(kind, region=region, host=host, kill=kill)
    if host is not None:
        raise UsageError(f"{kind} takes --region, not --host")
    return Fault(kind, region=region)


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
    if fault.kind == "region-partition":
        return f"isolate region {fault.region}"
    if fault.kind == "region-loss":
        return f"lose region {fault.region}"
    if fault.kind == "node-loss":
        return f"lose {fault.host}"
    return None


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


def derive_bounds(topology: Topology, fault: Fault, healthy: float = 90.0, rtt: float = 0.0) -> Bounds:
    """The bounds a drill holds the site to, from the rendered settings and the WAN's round trip.

    Allowed gaps, per region and stream: a region the fault leaves alone may stall no
    longer than HAProxy's detection bound. Where Galera must drop a member first (a
    partition, a lost region or node), the survivors may stall until the view changes
    (suspect + install timeout); where HAProxy must move to a backup, add its detection
    bound; where a VIP must move, the VRRP master-down interval. The slack for the client
    to see it is SLACK plus `RTTS_PER_FAILOVER` round trips of the WAN (`rtt`, seconds:
    the delay the site runs at, which the drill keeps).
    """
    proxies = topology.with_role("haproxy")
    detection = max((h.settings.haproxy.detection_bound for h in proxies), default=3.0)
    evs = [evs_timeouts(topology, h) for h in topology.galera_nodes]
    galera = max((e["suspect_timeout"] + e["install_timeout"] for e in evs), default=12.5)
    keepalived = topology.with_role("keepalived")
    vrrp = 0.0
    for region in topology.regions:
        for vip in region.vips:
            if vip.master is None:
                continue
            ka = topology.host(vip.master).settings.keepalived
            backup_priority = ka.master_priority - 10  # the next proxy in the rotation (render.context)
            vrrp = max(vrrp, 3 * ka.advert_int + (256 - backup_priority) / 256 * ka.advert_int)
    if not keepalived:
        vrrp = 0.0
    names = [r.name for r in topology.regions]
    slack = SLACK + RTTS_PER_FAILOVER * rtt
    quiet = detection + slack
    write = dict.fromkeys(names, quiet)
    token = dict.fromkeys(names, quiet)
    vip_move = None
    if fault.kind in ("region-partition", "region-loss"):
        write = dict.fromkeys(names, galera + slack)
        token = dict.fromkeys(names, galera + slack)
    elif fault.kind == "node-loss":
        write = dict.fromkeys(names, galera + slack)
        token = dict.fromkeys(names, galera + slack)
        assert fault.region is not None
        write[fault.region] = token[fault.region] = galera + detection + slack
    elif fault.kind == "keystone-loss":
        assert fault.region is not None
        token[fault.region] = detection + slack
    elif fault.kind == "proxy-loss":
        assert fault.region is not None
        write[fault.region] = token[fault.region] = vrrp + slack
        vip_move = vrrp + slack  # the monitor samples `ip addr` through a command: its latency is the slack
    return Bounds(
        haproxy_detection=detection,
        galera_detection=galera,
        vrrp_failover=round(vrrp, 3),
        slack=round(slack, 3),
        write_gap={k: round(v, 3) for k, v in write.items()},
        token_gap={k: round(v, 3) for k, v in token.items()},
        vip_move=round(vip_move, 3) if vip_move is not None else None,
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
