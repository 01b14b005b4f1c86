"""The six faults of `kgt drill`, one class each, in the order `kgt drill all` runs them.

Each says how it resolves its target, what it injects and how it heals (through the
`Backend` primitives only), which `kgt analyze` scenario it is, which gap bounds it
narrows, and what only it expects (a proxy-loss: the VIP moved).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import click

from toolkit.cli_options import duration as duration_option
from toolkit.drills.faults.base import Echo, Fault, FaultKind, GapBounds, Limits, Target, register
from toolkit.drills.verdicts import Expectation, fmt_seconds
from toolkit.errors import UsageError

if TYPE_CHECKING:
    from toolkit.drills.backend import Backend
    from toolkit.drills.checker.facts import Facts
    from toolkit.topology.model import Topology


def _region(topology: Topology, target: Target) -> str:
    """The target region: the one given, else the host's, else the last in the file."""
    names = [r.name for r in topology.regions]
    return target.region or (topology.host(target.host).region if target.host else names[-1])


def _no_host(kind: str, target: Target) -> None:
    if target.host is not None:
        raise UsageError(f"{kind} takes --region, not --host")


def _galera_failure(limits: Limits) -> GapBounds:
    """Every region may stall until Galera's view changes."""
    seconds = limits.galera_detection + limits.slack
    return GapBounds(limits.everywhere(seconds), limits.everywhere(seconds))


class _RegionFault(FaultKind):
    """A fault of a whole region: `--region` (default: the last), never `--host`."""

    @classmethod
    def resolve(cls, topology: Topology, target: Target) -> Fault:
        """The region given, else the last."""
        region = _region(topology, target)
        cls.check_region(topology, region)
        _no_host(cls.name, target)
        return Fault(cls.name, region=region)

    @staticmethod
    def check_region(topology: Topology, region: str) -> None:
        """UsageError when the fault cannot happen in `region`."""


class _GaleraRegionFault(_RegionFault):
    """A region lost to the Galera cluster: a `kgt analyze` scenario; survivors stall until the view changes."""

    scenario_format: ClassVar[str]  # the scenario's name, of {region}

    def scenario(self) -> str | None:
        """The `kgt analyze` scenario of the region."""
        return self.scenario_format.format(region=self.region)

    def gap_bounds(self, limits: Limits) -> GapBounds:
        """Every region may stall until Galera's view changes."""
        return _galera_failure(limits)


@register("region-partition")
class RegionPartition(_GaleraRegionFault):
    """Cut REGION off from every other region, both ways; its hosts keep running."""

    options = (click.option("--region", help="the region to cut off (default: the last)"),)
    scenario_format = "isolate region {region}"

    def inject(self, backend: Backend) -> dict[str, Any]:
        """Cut the region off."""
        backend.cut(self.region)
        return {"cut": self.region}

    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        """Remove every cut."""
        backend.heal_network()
        return {"network": "healed"}


@register("region-loss")
class RegionLoss(_GaleraRegionFault):
    """Stop every host of REGION; heal starts them and their services in order (IST rejoin)."""

    scenario_format = "lose region {region}"
    options = (click.option("--region", help="the region to lose (default: the last)"),)

    def inject(self, backend: Backend) -> dict[str, Any]:
        """Stop the region's hosts."""
        hosts = list(backend.topology.region(self.region).hosts)
        backend.stop_hosts(hosts)
        return {"stopped": [h.name for h in hosts]}

    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        """Start the hosts and their services in order; how each node rejoined."""
        hosts = backend.topology.region(self.region).hosts
        steps = backend.start_hosts(list(hosts), echo)
        return {"started": [h.name for h in hosts], "steps": steps, "rejoin": steps.get("rejoin", {})}


@register("keystone-loss")
class KeystoneLoss(_RegionFault):
    """Stop Keystone on every Keystone host of REGION; its endpoint must go on through backups."""

    options = (click.option("--region", help="the region whose Keystone hosts stop (default: the last)"),)

    @staticmethod
    def check_region(topology: Topology, region: str) -> None:
        """The region must have a Keystone host."""
        if not topology.region(region).with_role("keystone"):
            raise UsageError(f"region {region} has no Keystone host to lose")

    def gap_bounds(self, limits: Limits) -> GapBounds:
        """The region's tokens go through a backup Keystone once HAProxy sees the loss."""
        quiet = super().gap_bounds(limits)
        quiet.token[self.region] = limits.haproxy_detection + limits.slack
        return quiet

    def inject(self, backend: Backend) -> dict[str, Any]:
        """Stop every Keystone of the region."""
        hosts = list(backend.topology.region(self.region).with_role("keystone"))
        for host in hosts:
            backend.stop_service(host, "keystone")
        return {"stopped": [f"{h.name}/keystone" for h in hosts]}

    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        """Start them again."""
        hosts = backend.topology.region(self.region).with_role("keystone")
        for host in hosts:
            backend.start_service(host, "keystone")
        return {"started": [f"{h.name}/keystone" for h in hosts]}


@register("proxy-loss")
class ProxyLoss(FaultKind):
    """Stop keepalived and HAProxy on a proxy; its VIP must move to another proxy."""

    options = (
        click.option("--region", help="the region (default: the last)"),
        click.option("--host", help="the proxy to stop (default: the MASTER of the region's first VIP)"),
        click.option("--kill", is_flag=True, help="kill -9 HAProxy and keepalived instead of stopping them"),
    )
    vip_interval = 0.2  # a VIP move takes a few seconds: sample it closely

    @classmethod
    def resolve(cls, topology: Topology, target: Target) -> Fault:
        """The proxy given, else the MASTER of the region's first VIP."""
        region = _region(topology, target)
        host = target.host
        if host is None:
            vips = topology.region(region).vips
            if not vips or not vips[0].master:
                raise UsageError(f"region {region} has no VIP held by keepalived; give --host")
            host = vips[0].master
        proxy = topology.host(host)
        if proxy.region != region or not proxy.has("haproxy"):
            raise UsageError(f"--host: {host} is not a proxy of region {region}")
        return Fault(cls.name, region=region, host=host, kill=target.kill)

    def describe(self) -> str:
        """`proxy-loss HOST`, `(kill -9)` when killed."""
        return f"{self.name} {self.host}" + (" (kill -9)" if self.fault.kill else "")

    def gap_bounds(self, limits: Limits) -> GapBounds:
        """The region stalls until the VIP moved and its clients got through the new proxy.

        The VIP moves twice (at the fault, and back to its MASTER at the heal). Each time a
        request left behind hangs until the client's timeout, which ends after the VIP moved
        (VRRPv3: 1.04 s < 2 s), then the reconnect may wait one SYN retransmission; a slack for
        the client's own pacing before the request, one for the reconnect's round trips.
        Measured: 2.0 s timeout + 1.47 s reconnect + 0.5 s pacing = 4.0 s with the VIP moved
        in 0.2 s. (With VRRPv2's 1 s adverts the bound was 3.45 s + slack = 4.45 s.)
        """
        quiet = super().gap_bounds(limits)
        left_behind = max(limits.vrrp_failover, limits.client_timeout) + limits.syn_retransmit
        stall = max(limits.quiet, left_behind + 2 * limits.slack)
        quiet.write[self.region] = quiet.token[self.region] = stall
        # The monitor samples `ip addr` through a command: its latency is the slack.
        return GapBounds(quiet.write, quiet.token, limits.vrrp_failover + limits.slack)

    def inject(self, backend: Backend) -> dict[str, Any]:
        """keepalived first, so a graceful stop hands the VIP over before HAProxy stops answering."""
        host = backend.topology.host(self.host)
        held = backend.vips_held(host)
        stopped = []
        for service in ("keepalived", "haproxy"):
            if host.has(service):
                backend.stop_service(host, service, kill=self.fault.kill)
                stopped.append(f"{host.name}/{service}")
        return {"stopped": stopped, "vips": held, "kill": self.fault.kill}

    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        """Start HAProxy, then keepalived; try both before reporting a failure."""
        host = backend.topology.host(self.host)
        errors = []
        for service in ("haproxy", "keepalived"):
            if host.has(service):
                try:
                    backend.start_service(host, service)
                except Exception as exc:  # try the other service too, then report
                    errors.append(f"{service}: {exc}")
        if errors:
            raise RuntimeError("; ".join(errors))
        return {"started": [f"{host.name}/haproxy", f"{host.name}/keepalived"]}

    def moved_vips(self, injected: dict[str, Any]) -> list[str]:
        """The VIPs the proxy held when it was stopped."""
        return list(injected.get("vips", []))

    def expectations(self, facts: Facts) -> list[Expectation]:
        """The VIP reached another proxy within the VRRP bound."""
        move, bound = facts.detection.vip_move, facts.bounds.vip_move
        return [
            Expectation(
                "VIP moved",
                self.region,
                f"VIP on another proxy ≤ {fmt_seconds(bound)}",
                f"{fmt_seconds(move.seconds)} to {move.to}" if move else "never moved",
                move is not None and bound is not None and move.seconds <= bound,
            )
        ]


@register("node-loss")
class NodeLoss(FaultKind):
    """kill -9 one Galera node; heal restarts it at its recovered position (IST expected)."""

    options = (click.option("--host", help="the Galera node to crash (default: the first of the last region)"),)

    @classmethod
    def resolve(cls, topology: Topology, target: Target) -> Fault:
        """The node given, else the first Galera node of the region (the last by default)."""
        host = target.host
        if host is None:
            region = target.region or topology.regions[-1].name
            nodes = topology.region(region).galera_nodes
            if not nodes:
                raise UsageError(f"region {region} has no Galera node to lose; give --host")
            host = nodes[0].name
        if not topology.host(host).has("galera"):
            raise UsageError(f"--host: {host} is not a Galera node")
        return Fault(cls.name, region=topology.host(host).region, host=host)

    def describe(self) -> str:
        """`node-loss HOST`."""
        return f"{self.name} {self.host}"

    def scenario(self) -> str | None:
        """`lose HOST`."""
        return f"lose {self.host}"

    def gap_bounds(self, limits: Limits) -> GapBounds:
        """Everyone stalls until the view changes; the node's region until HAProxy moves too."""
        gaps = _galera_failure(limits)
        seconds = limits.galera_detection + limits.haproxy_detection + limits.slack
        gaps.write[self.region] = gaps.token[self.region] = seconds
        return gaps

    def inject(self, backend: Backend) -> dict[str, Any]:
        """kill -9 mariadbd."""
        backend.crash_node(backend.topology.host(self.host))
        return {"killed": f"{self.host}/mariadb"}

    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        """Restart it at its recovered position; how it rejoined."""
        rejoin = backend.restart_node(backend.topology.host(self.host))
        return {"rejoin": {self.host: rejoin}}


@register("wan-degrade")
class WanDegrade(FaultKind):
    """Add delay between regions; everything must keep working."""

    options = (
        click.option("--rtt", default="200ms", callback=duration_option, show_default=True, help="round trip added"),
        click.option("--between", help="only between these two regions: r1,r2"),
    )

    @classmethod
    def target(cls, **options: Any) -> Target:
        """`--between r1,r2` → a pair of regions."""
        between: str | None = options.pop("between", None)
        pair = None
        if between:
            parts = tuple(p.strip() for p in between.split(","))
            if len(parts) != 2:
                raise UsageError(f"--between: want two regions like r1,r2, got '{between}'")
            pair = (parts[0], parts[1])
        return Target(between=pair, **options)

    @classmethod
    def resolve(cls, topology: Topology, target: Target) -> Fault:
        """200 ms between all regions unless told otherwise."""
        names = [r.name for r in topology.regions]
        between = target.between
        if between is not None and (len(set(between)) != 2 or not set(between) <= set(names)):
            raise UsageError(f"--between: want two different regions of {', '.join(names)}")
        return Fault(cls.name, rtt=0.2 if target.rtt is None else target.rtt, between=between)

    def describe(self) -> str:
        """`wan-degrade rtt 200ms between all regions`."""
        where = ",".join(self.fault.between) if self.fault.between else "all regions"
        return f"{self.name} rtt {round((self.fault.rtt or 0) * 1000)}ms between {where}"

    def inject(self, backend: Backend) -> dict[str, Any]:
        """Delay the WAN."""
        from toolkit.lab.network import WanSpec

        spec = WanSpec(rtt=self.fault.rtt or 0.0, between=self.fault.between)
        backend.degrade_wan(spec)
        return {"wan": spec.describe()}

    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        """Remove the delay (the site's own WAN stays)."""
        backend.heal_network()
        return {"network": "healed"}
