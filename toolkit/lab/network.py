"""Cross-region network of the lab: routes through the WAN router, delay, loss and cuts.

Only traffic between regions is touched. Delay and loss use `tc netem` inside the
containers where the kernel has it, else the userspace WAN router (`wanrouter/`),
through which every container routes the other regions' /24s. Cuts are iptables rules
inside the cut region's containers, in a chain of their own so healing is one flush.
The delay an operator sets with `kgt lab wan` is the lab's WAN setting: a drill's fault
goes on top of it and its heal returns to it (a multi-region site always has a WAN).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from toolkit.errors import DeadlineExceeded, LabError
from toolkit.lab.compose import ROUTER, ROUTER_NAME
from toolkit.lab.host import LabHost
from toolkit.render.firewall import RULESET
from toolkit.retry import poll
from toolkit.topology.model import Host, Topology

WAN_CONFIG = "/run/kgt/wan.json"
# The lab's WAN setting (`kgt lab wan --rtt/--loss`), kept in the router so that a drill's
# own fault and heal leave it in place: healing restores it, only `--clear` removes it.
WAN_SETTING = "/run/kgt/wan-setting.json"
CUT_CHAIN = "KGT-CUT"


def router() -> LabHost:
    """The WAN router container."""
    return LabHost(ROUTER_NAME)


def netem_available() -> bool:
    """Whether the kernel the lab runs on has sch_netem (probed on the router's loopback)."""
    probe = router().run("tc qdisc add dev lo root netem delay 0ms && tc qdisc del dev lo root", timeout=15)
    return probe.ok


def _write_router_config(topology: Topology, rules: list[dict[str, object]]) -> None:
    config = {"regions": {r.name: str(r.subnet) for r in topology.regions}, "rules": rules}
    text = json.dumps(config, indent=2)
    result = router().run(
        f"mkdir -p /run/kgt && cat > {WAN_CONFIG}.tmp && mv {WAN_CONFIG}.tmp {WAN_CONFIG}", input=text, timeout=15
    )
    if not result.ok:
        raise LabError(f"cannot write the WAN router config: {result.stderr.strip()}")


def start_router(topology: Topology) -> None:
    """Start the userspace WAN router with no delay, and wait until it forwards."""
    _write_router_config(topology, [])
    r = router()
    r.start("wanrouter", f"python3 -m toolkit.lab.wanrouter run --config {WAN_CONFIG}")
    try:
        poll(
            lambda: r.run("ip -o link show kgtwan0 | grep -q 'state UP\\|UNKNOWN'").ok and r.running("wanrouter"),
            timeout=30,
            what="WAN router up",
        )
    except DeadlineExceeded as exc:
        raise LabError(f"step wan-router: host {ROUTER_NAME}: not forwarding\n{r.log_tail('wanrouter')}") from exc


def route_regions(topology: Topology) -> None:
    """In every container, send the other regions' /24s through the WAN router."""
    for region in topology.regions:
        others = [r for r in topology.regions if r.name != region.name]
        script = "; ".join(f"ip route replace {o.subnet} via {ROUTER}" for o in others) or "true"
        for host in region.hosts:
            result = LabHost(host.name).run(script, timeout=15)
            if not result.ok:
                raise LabError(f"step wan-router: host {host.name}: cannot add routes: {result.stderr.strip()}")


@dataclass(frozen=True)
class WanSpec:
    """A WAN condition: round-trip time and loss between some regions (all pairs if None)."""

    rtt: float = 0.0  # seconds
    loss_pct: float = 0.0
    between: tuple[str, str] | None = None

    def describe(self) -> str:
        """One line for people."""
        where = " ↔ ".join(self.between) if self.between else "all region pairs"
        return f"rtt {self.rtt * 1000:g}ms, loss {self.loss_pct:g}% between {where}"

    def to_json(self) -> dict[str, object]:
        """{"rtt", "loss_pct", "between"}."""
        return {"rtt": self.rtt, "loss_pct": self.loss_pct, "between": list(self.between) if self.between else None}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> WanSpec:
        """Inverse of `to_json`."""
        between = data.get("between")
        pair = (str(between[0]), str(between[1])) if isinstance(between, list) and len(between) == 2 else None
        rtt, loss = data.get("rtt"), data.get("loss_pct")
        return cls(
            rtt=float(rtt) if isinstance(rtt, (int, float)) else 0.0,
            loss_pct=float(loss) if isinstance(loss, (int, float)) else 0.0,
            between=pair,
        )

    def rule(self) -> dict[str, object]:
        """The WAN router's rule for this condition."""
        return {
            "between": list(self.between) if self.between else None,
            "delay_ms": self.rtt * 1000 / 2,
            "loss_pct": self.loss_pct,
        }


def setting() -> WanSpec | None:
    """The lab's WAN setting (`kgt lab wan --rtt/--loss`), None when there is none."""
    result = router().run(f"cat {WAN_SETTING} 2>/dev/null", timeout=15)
    if not result.ok or not result.stdout.strip():
        return None
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return None
    return WanSpec.from_json(data) if isinstance(data, dict) else None


def setting_rules() -> list[dict[str, object]]:
    """The router rules the lab's WAN setting stands for (none without a setting)."""
    current = setting()
    return [current.rule()] if current is not None else []


def apply_wan(topology: Topology, spec: WanSpec, *, as_setting: bool = False) -> str:
    """Apply delay/loss to cross-region traffic; return which path was used.

    `as_setting` makes it the lab's WAN setting (what `kgt lab wan` does); otherwise it is
    a fault on top of the setting (the router applies the setting's rule, then this one,
    for the pairs it names), and `heal` returns to the setting.
    """
    if spec.between:
        for name in spec.between:
            topology.region(name)  # KeyError for an unknown region, reported by the caller
    if as_setting:
        text = json.dumps(spec.to_json())
        result = router().run(
            f"mkdir -p /run/kgt && cat > {WAN_SETTING}.tmp && mv {WAN_SETTING}.tmp {WAN_SETTING}",
            input=text,
            timeout=15,
        )
        if not result.ok:
            raise LabError(f"cannot record the WAN setting: {result.stderr.strip()}")
    if netem_available():
        _netem(topology, spec)
        return "netem"
    base = [] if as_setting else setting_rules()
    _write_router_config(topology, [*base, spec.rule()])
    return "wan-router"


def _netem(topology: Topology, spec: WanSpec) -> None:
    """tc prio + netem on every container for traffic to the affected regions (each side delays half)."""
    for region in topology.regions:
        if spec.between and region.name not in spec.between:
            continue
        targets = [
            r for r in topology.regions if r.name != region.name and (not spec.between or r.name in spec.between)
        ]
        lines = [
            "tc qdisc del dev eth0 root 2>/dev/null || true",
            "tc qdisc add dev eth0 root handle 1: prio bands 4",
            f"tc qdisc add dev eth0 parent 1:4 handle 40: netem delay {spec.rtt * 500:g}ms loss {spec.loss_pct:g}%",
        ]
        lines += [
            f"tc filter add dev eth0 parent 1: protocol ip u32 match ip dst {t.subnet} flowid 1:4" for t in targets
        ]
        for host in region.hosts:
            result = LabHost(host.name).run("; ".join(lines), timeout=15)
            if not result.ok:
                raise LabError(f"host {host.name}: tc netem failed: {result.stderr.strip()}")


def cut(topology: Topology, region: str, only: Sequence[str] | None = None) -> None:
    """Cut `region` (or only the hosts named in `only`) off from every other region, both ways.

    The hosts keep running; traffic from outside the regions (the lab host) still reaches them.
    """
    target = topology.region(region)
    others = [r for r in topology.regions if r.name != region]
    rules = [
        f"iptables -N {CUT_CHAIN} 2>/dev/null || iptables -F {CUT_CHAIN}",
        f"iptables -C INPUT -j {CUT_CHAIN} 2>/dev/null || iptables -I INPUT -j {CUT_CHAIN}",
        f"iptables -C OUTPUT -j {CUT_CHAIN} 2>/dev/null || iptables -I OUTPUT -j {CUT_CHAIN}",
    ]
    for other in others:
        rules += [
            f"iptables -A {CUT_CHAIN} -s {other.subnet} -j DROP",
            f"iptables -A {CUT_CHAIN} -d {other.subnet} -j DROP",
        ]
    for host in target.hosts:
        if only is not None and host.name not in only:
            continue
        result = LabHost(host.name).run(" && ".join(rules), timeout=20)
        if not result.ok:
            raise LabError(f"host {host.name}: iptables failed: {result.stderr.strip()}")


def heal(topology: Topology, *, keep_setting: bool = True) -> None:
    """Remove every cut and every delay (best effort on each host, errors collected).

    With `keep_setting` (a drill's heal) the lab's WAN setting is applied again afterwards;
    without it (`kgt lab wan --clear`) the setting is forgotten too.
    """
    errors = []
    kept = setting() if keep_setting else None
    for host in topology.hosts:
        result = LabHost(host.name).run(
            f"iptables -F {CUT_CHAIN} 2>/dev/null; tc qdisc del dev eth0 root 2>/dev/null; true", timeout=20
        )
        if not result.ok:
            errors.append(f"{host.name}: {result.stderr.strip()}")
    try:
        if not keep_setting:
            router().run(f"rm -f {WAN_SETTING}", timeout=15)
        _write_router_config(topology, [])
        if kept is not None:
            apply_wan(topology, kept, as_setting=True)
    except LabError as exc:
        errors.append(str(exc))
    if errors:
        raise LabError("healing failed on " + "; ".join(errors))


def tcp_connect_ms(source: str, address: str, port: int, count: int = 5) -> list[float]:
    """TCP connect times in ms from inside container `source` to address:port."""
    code = (
        "import socket,time,json\n"
        f"out=[]\nfor _ in range({count}):\n"
        "    s=socket.socket(); s.settimeout(5); t=time.perf_counter()\n"
        f"    s.connect(({address!r},{port})); out.append((time.perf_counter()-t)*1000); s.close()\n"
        "print(json.dumps(out))\n"
    )
    result = LabHost(source).run(f"python3 -c {shlex.quote(code)}", timeout=60)
    if not result.ok:
        raise LabError(f"{source}: connect to {address}:{port} failed: {result.stderr.strip()[-300:]}")
    return [float(x) for x in json.loads(result.stdout)]


def load_firewall(topology: Topology, host: Host) -> None:
    """Load `host`'s rendered nftables ruleset in its container, as nftables.service does at a real
    host's boot: on `kgt lab up`, and again after a drill powers the container back on (a
    stopped container's network namespace, and with it the ruleset, is gone). No-op without one."""
    if not topology.firewall.enabled:
        return
    result = LabHost(host.name).run(f"nft -f /{RULESET}", timeout=30)
    if not result.ok:
        raise LabError(f"{host.name}: nft -f /{RULESET}: {result.stderr.strip()[-500:]}")
