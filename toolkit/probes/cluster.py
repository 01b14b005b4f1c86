"""`kgt probe cluster`: the quorum view of `kgt check quorum` as a Nagios plugin.

Asks every Galera node of the topology at once (`toolkit.check.nodes.probe_all`, user
kgt_health) and judges the answers with the same pure function as `kgt check quorum`
(`toolkit.check.quorum.evaluate`). What the probe adds is the `-w/-c` judgement of one
number and the perfdata.

`-w/-c` judge **missing voters**: voters (Galera nodes and garbd) outside the Primary
component, i.e. the topology's voters minus the Primary component's wsrep_cluster_size
(all voters when there is no Primary). Default `-w 0` (any missing voter is a WARNING),
no default `-c`. Primary weight is reported as perfdata, not judged: a Primary that holds
no majority of the topology's weight is CRITICAL by rule (below).

States
- CRITICAL: no Primary component; split brain (two Primary components); the Primary
  component's weight is not more than half the total (it lives on dynamic quorum only);
  no node answered and every failure was a network one (all unreachable: the database
  is down for everyone); missing voters outside -c.
- WARNING: missing voters outside -w (a region cut off and read-only, a node down,
  named by region); and, whatever the thresholds, what `kgt check quorum` warns about
  besides missing nodes (not Synced, not ready, wrong segment or cluster name, flow
  control or receive queue high, a view change caught half-way).
- UNKNOWN: no node answered and some failure was not a network one (credentials
  rejected, a server error); bad arguments; no result within -t.

An unreachable node is a missing voter (judged by -w/-c), not an UNKNOWN: from outside,
a node that cannot be asked is not serving.

Perfdata: `missing` (voters; -w/-c; max = voters), `missing_<region>` (Galera nodes of
the region not Primary), `primary_weight` (max = total weight), `nodes_synced`,
`regions_primary`, `components`, `flow_control_paused_max` (0..1), `recv_queue_max`,
`repl_latency_max` (s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import nagiosplugin

from toolkit.probes import model
from toolkit.probes.model import Critical, Ok, Unknown, Warn
from toolkit.probes.runtime import Deadline, ProbeArgs, execute

if TYPE_CHECKING:
    from toolkit.check.quorum import NodeVerdict, QuorumVerdict
    from toolkit.topology.model import Topology

NAME = "kgt cluster"


def missing_hosts(verdict: QuorumVerdict) -> list[NodeVerdict]:
    """Node verdicts of Galera nodes outside the Primary component (down, unknown, non-Primary)."""
    return [v for v in verdict.nodes if v.state in ("down", "unknown", "non-primary")]


def missing_voters(verdict: QuorumVerdict) -> int:
    """Voters outside the Primary component: expected size minus the Primary's size."""
    main = verdict.components[0] if verdict.components else None
    if main is None:
        return int(verdict.expected_size)
    size = main.size if main.size is not None else verdict.expected_size - len(missing_hosts(verdict))
    return max(0, int(verdict.expected_size) - int(size))


def _about_missing(reason: str, verdict: QuorumVerdict) -> bool:
    """Whether a WARNING reason of the verdict only says that some voters are missing.

    Those are judged by -w/-c instead; the wording is `toolkit.check.quorum.evaluate`'s
    (pinned by tests/unit/test_probes_cluster.py against the real function).
    """
    hosts = [v.result.host for v in missing_hosts(verdict)]
    if reason.startswith(("non-Primary: ", "cluster size ")):
        return True
    if any(reason.startswith(f"{h} (") and " did not answer" in reason for h in hosts):
        return True
    return any(reason.startswith(f"region {r.name} is non-Primary") for r in verdict.regions)


def missing_text(verdict: QuorumVerdict) -> str:
    """`r3: r3-db1 non-primary; r2: r2-db1 down (timeout)`, by region."""
    parts = []
    for region in verdict.regions:
        nodes = [v for v in missing_hosts(verdict) if v.result.region == region.name]
        if nodes:
            parts.append(
                f"{region.name}: "
                + ", ".join(
                    f"{v.result.host} {v.state}" + (f" ({v.result.error_class})" if v.result.error_class else "")
                    for v in nodes
                )
            )
    return "; ".join(parts)


class Cluster(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """Every Galera node of the topology, judged together."""

    def __init__(self, topology: Topology, user: str, password: str, deadline: Deadline) -> None:
        self.topology, self.user, self.password, self.deadline = topology, user, password, deadline
        self.verdict: Any = None

    def probe(self) -> list[nagiosplugin.Metric]:
        """The verdict as findings, the missing voters as the judged number, perfdata."""
        from toolkit.check import nodes, quorum

        results = nodes.probe_all(
            self.topology.galera_nodes,
            self.user,
            self.password,
            timeout=self.deadline.budget() * 0.9,
            ca=self.topology.client_ca,
        )
        verdict = self.verdict = quorum.evaluate(self.topology, results)
        code = int(verdict.state)
        out: list[nagiosplugin.Metric] = []
        if code >= 2:  # CRITICAL and UNKNOWN are rules, not thresholds
            state = Unknown if code == 3 else Critical
            out.append(model.finding("quorum", state, str(verdict.summary)))
        else:
            for i, reason in enumerate(verdict.reasons):
                if not _about_missing(reason, verdict):
                    out.append(model.finding(f"reason{i}", Warn, reason))
        total = int(verdict.expected_size)
        out.append(nagiosplugin.Metric("missing", missing_voters(verdict), min=0, max=total, context="missing"))
        for region in self.topology.regions:
            lost = sum(1 for v in missing_hosts(verdict) if v.result.region == region.name)
            out.append(
                nagiosplugin.Metric(f"missing_{region.name}", lost, min=0, max=len(region.galera_nodes), context="perf")
            )
        m = verdict.metrics
        out += [
            nagiosplugin.Metric(
                "primary_weight", int(m["primary_weight"]), min=0, max=int(m["total_weight"]), context="perf"
            ),
            nagiosplugin.Metric(
                "nodes_synced", int(m["nodes_synced"]), min=0, max=int(m["nodes_expected"]), context="perf"
            ),
            nagiosplugin.Metric(
                "regions_primary", int(m["regions_primary"]), min=0, max=int(m["regions_total"]), context="perf"
            ),
            nagiosplugin.Metric("components", int(m["components"]), min=0, context="perf"),
            nagiosplugin.Metric(
                "flow_control_paused_max", round(float(m["flow_control_paused_max"]), 6), min=0, max=1, context="perf"
            ),
            nagiosplugin.Metric("recv_queue_max", int(m["recv_queue_max"]), min=0, context="perf"),
            nagiosplugin.Metric("repl_latency_max", round(float(m["repl_latency_max"]), 6), "s", min=0, context="perf"),
        ]
        return out


class MissingVoters(model.Scalar):
    """The `missing` metric's context: voters that did not answer, against the thresholds."""

    def __init__(self, resource: Cluster, warning: str | None, critical: str | None) -> None:
        super().__init__("missing", warning, critical)
        self.resource = resource

    def evaluate(self, metric: nagiosplugin.Metric, resource: Any) -> nagiosplugin.Result:
        """The result, naming the missing voters."""
        verdict = self.resource.verdict
        who = missing_text(verdict)
        text = f"{metric.value} of {metric.max} voters missing" + (f" ({who})" if who else "")
        for state, bound in ((Critical, self.critical), (Warn, self.warning)):
            if not bound.match(metric.value):
                return nagiosplugin.Result(state, f"{text}, outside {bound}", metric)
        return nagiosplugin.Result(Ok, text, metric)


def main(args: ProbeArgs) -> int:
    """Run the probe; return the exit code."""

    def make(deadline: Deadline) -> nagiosplugin.Check:
        model_ = args.required_model()
        resource = Cluster(model_, args.user, args.password(model_, "health_password"), deadline)

        def ok_text(results: nagiosplugin.Results) -> str:
            verdict = resource.verdict
            missing = results["missing"].metric.value
            if missing and verdict.components:
                main = verdict.components[0]
                return (
                    f"Primary {', '.join(main.regions)} weight {verdict.primary_weight}/{verdict.total_weight}; "
                    f"{results['missing']}"
                )
            return str(verdict.summary)

        return model.check(
            NAME,
            ok_text,
            resource,
            MissingVoters(resource, args.warning, args.critical),
            nagiosplugin.ScalarContext("perf"),
        )

    return execute(NAME, make, timeout=args.timeout, verbose=args.verbose)
