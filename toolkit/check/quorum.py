"""The quorum verdict: node results in, one Nagios-style verdict out (a pure function).

`evaluate(topology, results)` compares what the Galera nodes said (`nodes.NodeResult`,
one per node; missing ones count as unanswered) with what the topology expects, and
returns a `QuorumVerdict`. It does no I/O, so `kgt check quorum` and the `cluster` probe
share it and tests feed it hand-made results.

States (the exit codes of `kgt check quorum` and the probe):

- OK (0): every node answered, Primary and Synced, in one component of the expected size.
- WARNING (1): quorum holds but something is out: a node unanswered, non-Primary (a
  region cut off and read-only), not Synced or not ready, a smaller cluster than the
  topology, a wrong segment or cluster name, flow control or a receive queue above the
  thresholds, or a view change caught half-way.
- CRITICAL (2): no Primary component among the nodes that answered; split brain (two
  Primary components with different state UUIDs, or different conf_ids and disjoint
  members); the Primary component's weight is not more than half the topology's total
  (it survives only by Galera's dynamic quorum; one more loss stops it); or no node
  answered and every failure was a network one (refused, timed out).
- UNKNOWN (3): no node answered and at least one failure was not a network one (access
  denied, a server error): kgt cannot tell the state.

JSON (`QuorumVerdict.to_json`, schema "kgt.check.quorum/1"):

    {"schema": "kgt.check.quorum/1", "state": "OK|WARNING|CRITICAL|UNKNOWN", "code": 0-3,
     "summary": str, "reasons": [str],
     "total_weight": int, "primary_weight": int, "expected_size": int,
     "components": [{"state_uuid": str, "conf_id": int, "size": int|null, "weight": int,
                     "hosts": [str], "regions": [str]}],
     "regions": [{"name": str, "segment": int,
                  "state": "primary|degraded|read-only|down|unknown", "nodes": [str]}],
     "nodes": [{"state": "synced|primary|non-primary|down|unknown", "region_segment": int,
                ...every NodeResult field: host, region, address, port, answered, error_class,
                error, elapsed, cluster_status, cluster_size, cluster_weight, state_uuid,
                conf_id, local_state, ready, connected, flow_control_paused, recv_queue,
                recv_queue_avg, repl_latency, gcomm_uuid, segment, cluster_name, members}],
     "metrics": {"nodes_expected", "nodes_answered", "nodes_primary", "nodes_synced",
                 "cluster_size", "primary_weight", "total_weight", "regions_total",
                 "regions_primary", "components", "flow_control_paused_max",
                 "recv_queue_max", "repl_latency_max": number}}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolkit.check.nodes import NodeResult
from toolkit.check.state import NETWORK_ERRORS, State, worst
from toolkit.topology.model import Topology
from toolkit.wsrep import is_primary

SCHEMA = "kgt.check.quorum/1"


@dataclass(frozen=True)
class Thresholds:
    """Limits above which a node's replication health is a WARNING."""

    flow_control_paused: float = 0.1  # fraction of time paused (wsrep_flow_control_paused)
    recv_queue: int = 100  # write-sets waiting to be applied (wsrep_local_recv_queue)


@dataclass(frozen=True)
class ObservedComponent:
    """Nodes that answered Primary and agree on the cluster state UUID and conf_id."""

    state_uuid: str
    conf_id: int
    size: int | None  # wsrep_cluster_size as its nodes report it
    weight: int
    hosts: tuple[str, ...]  # the nodes we reached in it
    regions: tuple[str, ...]
    members: frozenset[str]  # wsrep_incoming_addresses, for telling a split from a view change

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return {
            "state_uuid": self.state_uuid,
            "conf_id": self.conf_id,
            "size": self.size,
            "weight": self.weight,
            "hosts": list(self.hosts),
            "regions": list(self.regions),
        }


@dataclass(frozen=True)
class NodeVerdict:
    """One node's result and its state: synced | primary | non-primary | down | unknown."""

    result: NodeResult
    state: str
    region_segment: int

    def to_json(self) -> dict[str, Any]:
        """The NodeResult fields plus `state` and `region_segment`."""
        return {**self.result.to_json(), "state": self.state, "region_segment": self.region_segment}


@dataclass(frozen=True)
class RegionVerdict:
    """A region's state: primary | degraded | read-only | down | unknown."""

    name: str
    segment: int
    state: str
    nodes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return {"name": self.name, "segment": self.segment, "state": self.state, "nodes": list(self.nodes)}


@dataclass(frozen=True)
class QuorumVerdict:
    """The outcome of the quorum check; `line()` is the one line a person or Nagios reads."""

    state: State
    summary: str
    reasons: tuple[str, ...]
    nodes: tuple[NodeVerdict, ...]
    regions: tuple[RegionVerdict, ...]
    components: tuple[ObservedComponent, ...]
    total_weight: int
    primary_weight: int
    expected_size: int
    metrics: dict[str, float]

    def line(self) -> str:
        """`STATE: summary`."""
        return f"{self.state.label}: {self.summary}"

    def region(self, name: str) -> RegionVerdict:
        """The verdict of one region (KeyError if none)."""
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form (schema kgt.check.quorum/1)."""
        return {
            "schema": SCHEMA,
            "state": self.state.label,
            "code": int(self.state),
            "summary": self.summary,
            "reasons": list(self.reasons),
            "total_weight": self.total_weight,
            "primary_weight": self.primary_weight,
            "expected_size": self.expected_size,
            "components": [c.to_json() for c in self.components],
            "regions": [r.to_json() for r in self.regions],
            "nodes": [n.to_json() for n in self.nodes],
            "metrics": dict(self.metrics),
        }


def _node_state(r: NodeResult) -> str:
    if not r.answered:
        return "down" if r.error_class in NETWORK_ERRORS else "unknown"
    if not r.primary:
        return "non-primary"
    return "synced" if r.synced else "primary"


def _components(topology: Topology, primary: Sequence[NodeResult]) -> list[ObservedComponent]:
    by_address = {f"{h.address}:{h.settings.galera.port}": h for h in topology.galera_nodes}
    weights = {h.name: h.weight for h in topology.galera_nodes}
    order = {r.name: i for i, r in enumerate(topology.regions)}
    groups: dict[tuple[str, int], list[NodeResult]] = {}
    for r in primary:
        groups.setdefault((r.state_uuid or "?", r.conf_id if r.conf_id is not None else -1), []).append(r)
    out = []
    for (uuid, conf), nodes in groups.items():
        members = frozenset(m for n in nodes for m in n.members)
        reported = [n.cluster_weight for n in nodes if n.cluster_weight is not None]
        known = [by_address[m] for m in members if m in by_address]
        if reported:
            weight = max(reported)
        elif known:
            weight = sum(h.weight for h in known)
        else:
            weight = sum(weights.get(n.host, 1) for n in nodes)
        sizes = [n.cluster_size for n in nodes if n.cluster_size is not None]
        regions = sorted(
            {n.region for n in nodes} | {h.region for h in known}, key=lambda name: order.get(name, len(order))
        )
        out.append(
            ObservedComponent(
                uuid, conf, max(sizes) if sizes else None, weight, tuple(n.host for n in nodes), tuple(regions), members
            )
        )
    return sorted(out, key=lambda c: (-c.weight, -(c.size or 0), c.conf_id))


def _names(items: Iterable[str]) -> str:
    return ", ".join(items)


@dataclass
class Reasons:
    """What is wrong, by how bad it is; the state is the worst of them."""

    critical: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)

    @property
    def state(self) -> State:
        """CRITICAL, UNKNOWN or WARNING if any reason is, else OK (worst first)."""
        found = (State.CRITICAL, self.critical), (State.UNKNOWN, self.unknown), (State.WARNING, self.warning)
        return worst(state for state, reasons in found if reasons)

    def all(self) -> list[str]:
        """Every reason, worst first."""
        return self.critical + self.unknown + self.warning


def expected_results(topology: Topology, results: Iterable[NodeResult]) -> list[NodeResult]:
    """One result per Galera node of the topology, in its order; a node without one did not answer."""
    given = {r.host: r for r in results}
    return [given.get(h.name) or NodeResult.failed(h, "deadline", "no result") for h in topology.galera_nodes]


def region_state(states: Sequence[str]) -> str:
    """A region's state from its nodes' states: primary | degraded | read-only | unknown | down."""
    if states and all(s == "synced" for s in states):
        return "primary"
    if any(s in ("synced", "primary") for s in states):
        return "degraded"
    if "non-primary" in states:
        return "read-only"
    if "unknown" in states:
        return "unknown"
    return "down"


def _region_verdicts(topology: Topology, verdicts: Sequence[NodeVerdict]) -> tuple[RegionVerdict, ...]:
    return tuple(
        RegionVerdict(
            region.name,
            region.segment,
            region_state([v.state for v in verdicts if v.result.region == region.name]),
            tuple(h.name for h in region.galera_nodes),
        )
        for region in topology.regions
    )


def cluster_reasons(nodes: Sequence[NodeResult], components: Sequence[ObservedComponent], total: int) -> Reasons:
    """Whether there is one Primary component, and a majority one: nobody answered, none, a split, too light."""
    reasons = Reasons()
    answered = [r for r in nodes if r.answered]
    if not answered:
        failures = {r.host: r.error_class or "error" for r in nodes}
        detail = _names(f"{h} {c}" for h, c in failures.items())
        network = all(c in NETWORK_ERRORS for c in failures.values())
        (reasons.critical if network else reasons.unknown).append(f"no node answered ({detail})")
    elif not components:
        reasons.critical.append("no Primary component: " + _names(f"{r.host} {r.cluster_status}" for r in answered))
    else:
        _split_reasons(components, reasons)
        main = components[0]
        if not is_primary(main.weight, total):
            reasons.critical.append(
                f"Primary component weight {main.weight} of {total} is not a majority "
                f"(one more loss stops writes everywhere)"
            )
    return reasons


def _split_reasons(components: Sequence[ObservedComponent], reasons: Reasons) -> None:
    """More than one Primary component: a split brain, or a view change caught half-way."""
    if len({c.state_uuid for c in components}) > 1:
        reasons.critical.append(
            "split brain: Primary components with different state UUIDs: "
            + "; ".join(f"{_names(c.hosts)} ({c.state_uuid[:8]}, conf {c.conf_id})" for c in components)
        )
    elif len(components) > 1:
        disjoint = all(not (a.members & b.members) for i, a in enumerate(components) for b in components[i + 1 :])
        text = "; ".join(f"{_names(c.hosts)} (conf {c.conf_id})" for c in components)
        if disjoint:
            reasons.critical.append(f"split brain: Primary components with different conf_ids: {text}")
        else:
            reasons.warning.append(f"view change in progress: nodes disagree on conf_id: {text}")


def reachability_warnings(
    verdicts: Sequence[NodeVerdict], regions: Sequence[RegionVerdict], answered: bool, primary: bool
) -> list[str]:
    """Nodes that did not answer (when others did), regions and nodes cut off from the Primary component."""
    out = []
    if answered:
        out += [
            f"{v.result.host} ({v.result.region}) did not answer: {v.result.error_class}"
            for v in verdicts
            if v.state in ("down", "unknown")
        ]
    read_only = {rv.name for rv in regions if rv.state == "read-only"}
    if primary:
        out += [
            f"region {rv.name} is non-Primary (read-only): cut off from the Primary component"
            for rv in regions
            if rv.name in read_only
        ]
    lone = [v.result for v in verdicts if v.state == "non-primary" and v.result.region not in read_only]
    if lone and primary:
        out.append("non-Primary: " + _names(f"{r.host} ({r.region})" for r in lone))
    return out


def node_warnings(v: NodeVerdict, cluster_name: str, limits: Thresholds) -> list[str]:
    """What is out on one node: not Synced or ready, wrong segment or cluster, replication falling behind."""
    r = v.result
    out = []
    if v.state == "primary":
        out.append(f"{r.host} is {r.local_state}, not Synced")
    if not r.answered:
        return out
    if r.primary and r.ready is False:
        out.append(f"{r.host} is not ready (wsrep_ready OFF)")
    if r.segment is not None and r.segment != v.region_segment:
        out.append(f"{r.host} is in gmcast.segment {r.segment}, the topology says {v.region_segment}")
    if r.cluster_name and r.cluster_name != cluster_name:
        out.append(f"{r.host} belongs to cluster '{r.cluster_name}', not '{cluster_name}'")
    if (r.flow_control_paused or 0) > limits.flow_control_paused:
        out.append(f"{r.host} flow control paused {r.flow_control_paused:.0%} of the time")
    if (r.recv_queue or 0) > limits.recv_queue:
        out.append(f"{r.host} receive queue {r.recv_queue} write-sets")
    return out


def evaluate(topology: Topology, results: Iterable[NodeResult], thresholds: Thresholds | None = None) -> QuorumVerdict:
    """Judge the cluster from one result per Galera node (see the module docstring)."""
    limits = thresholds or Thresholds()
    nodes = expected_results(topology, results)
    total = topology.total_weight
    expected_size = len(topology.voters)
    segment_of = {r.name: r.segment for r in topology.regions}
    verdicts = tuple(NodeVerdict(r, _node_state(r), segment_of.get(r.region, 0)) for r in nodes)
    answered = [r for r in nodes if r.answered]
    primary = [r for r in answered if r.primary]
    components = _components(topology, primary)
    main = components[0] if components else None
    regions = _region_verdicts(topology, verdicts)

    reasons = cluster_reasons(nodes, components, total)
    reasons.warning += reachability_warnings(verdicts, regions, bool(answered), bool(primary))
    reasons.warning += [w for v in verdicts for w in node_warnings(v, topology.name, limits)]
    if main is not None and main.size is not None and main.size < expected_size and not reasons.critical:
        reasons.warning.append(f"cluster size {main.size} of {expected_size}")

    state = reasons.state
    return QuorumVerdict(
        state,
        _summary(reasons, main, nodes, len(regions), total),
        tuple(reasons.all()),
        verdicts,
        regions,
        tuple(components),
        total,
        main.weight if main else 0,
        expected_size,
        _metrics(nodes, components, regions, total),
    )


def _summary(
    reasons: Reasons, main: ObservedComponent | None, nodes: Sequence[NodeResult], regions: int, total: int
) -> str:
    """The one line: how healthy it is when OK, else the worst reason, the Primary side, and how many more."""
    synced = sum(1 for r in nodes if r.synced)
    weight = main.weight if main else 0
    if reasons.state == State.OK and main is not None:
        return (
            f"{synced}/{len(nodes)} nodes Primary and Synced in {regions} regions, "
            f"weight {weight}/{total}, conf_id {main.conf_id}"
        )
    every = reasons.all()
    summary = every[0]
    if main is not None and not reasons.critical:
        summary += f" (Primary: {_names(main.regions)}, weight {weight}/{total}, {synced}/{len(nodes)} nodes Synced)"
    if len(every) > 1:
        summary += f"; and {len(every) - 1} more"
    return summary


def _metrics(
    nodes: Sequence[NodeResult], components: Sequence[ObservedComponent], regions: Sequence[RegionVerdict], total: int
) -> dict[str, float]:
    """The perfdata of the verdict."""
    answered = [r for r in nodes if r.answered]
    main = components[0] if components else None
    return {
        "nodes_expected": len(nodes),
        "nodes_answered": len(answered),
        "nodes_primary": sum(1 for r in answered if r.primary),
        "nodes_synced": sum(1 for r in nodes if r.synced),
        "cluster_size": (main.size or 0) if main else 0,
        "primary_weight": main.weight if main else 0,
        "total_weight": total,
        "regions_total": len(regions),
        "regions_primary": sum(1 for rv in regions if rv.state in ("primary", "degraded")),
        "components": len(components),
        "flow_control_paused_max": max((r.flow_control_paused or 0.0 for r in answered), default=0.0),
        "recv_queue_max": max((r.recv_queue or 0 for r in answered), default=0),
        "repl_latency_max": max((r.repl_latency or 0.0 for r in answered), default=0.0),
    }
