"""`kgt probe vip`: the keepalived VIPs are where the topology says.

Two modes, both without SSH:

- On a proxy (NRPE or an Icinga agent runs it there): reads `ip -j addr` and compares
  the IPv4 addresses this host holds with the VIPs it should be VRRP MASTER for
  (`Vip.master`, the same rotation keepalived.conf is rendered from).
- `--all` on the monitoring host: judges every VIP of the site from per-host
  observations given as `--observe HOST=IP,IP` (one per keepalived host; `HOST=` for
  none). Feed them from what your agents already collect on each proxy (its IPv4
  addresses, e.g. an NRPE command running `ip -4 -br addr`). With `--host NAME` the
  local `ip -j addr` counts as NAME's observation (run on one proxy, observe the rest).

States (on a proxy)
- WARNING: a MASTER VIP not held here (from one host a VIP that failed over to the peer
  looks the same as one held by nobody, so this is degraded redundancy, not an outage:
  `--all` tells the two apart); holding a peer's VIP of the region (the peer is down or
  failing over).
- CRITICAL: holding a VIP of another region (keepalived misconfigured: traffic hijack).
- UNKNOWN: `ip` missing or failing, host not a keepalived host, bad arguments.

States (`--all`)
- CRITICAL: a VIP held by nobody or held twice (split brain of VRRP), or held in
  another region.
- WARNING: a VIP held by the proxy that is not its MASTER (failed over).
- UNKNOWN: a keepalived host without an observation (its VIPs cannot be judged).

No number is judged, so there is no -w/-c. Perfdata: on a proxy `vips_held` (region VIPs
held; max = the region's VIPs) and `masters_held` (max = VIPs it is MASTER for); with
`--all` `<vip>_holders` for each VIP and `vips_ok` (max = the site's VIPs).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import nagiosplugin

from toolkit.errors import ProbeUnknown
from toolkit.probes import model
from toolkit.probes.model import Critical, Ok, Warn
from toolkit.probes.runtime import Deadline, ProbeArgs, execute

if TYPE_CHECKING:
    from toolkit.topology.model import Host, Topology, Vip

NAME = "kgt vip"


def addresses(ip_json: str) -> set[str]:
    """IPv4 addresses in `ip -j addr` output."""
    try:
        links = json.loads(ip_json)
    except json.JSONDecodeError as exc:
        raise ProbeUnknown(f"`ip -j addr` output is not JSON: {exc.msg}") from None
    return {a["local"] for link in links for a in link.get("addr_info", []) if a.get("family") == "inet"}


def local_addresses(addr_json: Path | None, deadline: Deadline) -> set[str]:
    """This host's IPv4 addresses (from `ip -j addr`, or a file of its output)."""
    if addr_json is not None:
        try:
            return addresses(addr_json.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ProbeUnknown(f"{addr_json}: {exc.strerror}") from None
    try:
        done = subprocess.run(
            ["ip", "-j", "addr"], capture_output=True, text=True, timeout=deadline.budget(), check=False
        )
    except FileNotFoundError:
        raise ProbeUnknown("`ip` not found (install iproute2)") from None
    except subprocess.TimeoutExpired:
        raise ProbeUnknown("`ip -j addr` did not finish in time") from None
    if done.returncode:
        raise ProbeUnknown(f"`ip -j addr` failed: {done.stderr.strip()[:120]}")
    return addresses(done.stdout)


class HostVips(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """The VIPs one proxy holds, against those it should be MASTER for."""

    def __init__(self, topology: Topology, host: Host, held: Callable[[], set[str]]) -> None:
        self.topology, self.host, self.held = topology, host, held

    def probe(self) -> list[nagiosplugin.Metric]:
        """One finding per VIP of the region, plus any foreign VIP held."""
        held: set[str] = self.held()
        me = self.host.name
        region = self.topology.region(self.host.region)
        out = []
        for vip in region.vips:
            here = str(vip.address) in held
            what = f"{vip.name} ({vip.address})"
            if vip.master == me:
                out.append(
                    model.finding(
                        f"vip_{vip.name}",
                        *(
                            (Ok, f"holds {what}")
                            if here
                            else (
                                Warn,
                                f"{me} does not hold {what} although MASTER for it: failed over, "
                                f"or keepalived/haproxy down here",
                            )
                        ),
                    )
                )
            elif here:
                out.append(
                    model.finding(
                        f"vip_{vip.name}",
                        Warn,
                        f"{me} holds {what} whose MASTER is {vip.master}: is {vip.master} down?",
                    )
                )
        for vip in self.topology.vips:
            if vip.region != region.name and str(vip.address) in held:
                out.append(
                    model.finding(
                        f"vip_{vip.name}", Critical, f"{me} holds {vip.name} ({vip.address}) of region {vip.region}"
                    )
                )
        mine = [v for v in region.vips if v.master == me]
        out.append(
            nagiosplugin.Metric(
                "vips_held",
                sum(str(v.address) in held for v in region.vips),
                min=0,
                max=len(region.vips),
                context="perf",
            )
        )
        out.append(
            nagiosplugin.Metric(
                "masters_held", sum(str(v.address) in held for v in mine), min=0, max=len(mine), context="perf"
            )
        )
        return out


class SiteVips(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """Every VIP of the site, judged from per-host observations."""

    def __init__(self, topology: Topology, observed: dict[str, set[str]]) -> None:
        self.topology, self.observed = topology, observed

    def probe(self) -> list[nagiosplugin.Metric]:
        """One finding and one holder count per VIP."""
        out = []
        good = 0
        for vip in self.topology.vips:
            holders = [h for h, held in self.observed.items() if str(vip.address) in held]
            state, text = judge_site(vip, holders, {h.name: h.region for h in self.topology.hosts})
            good += state == Ok
            out.append(model.finding(f"vip_{vip.name}", state, text))
            out.append(nagiosplugin.Metric(f"{vip.name}_holders", len(holders), min=0, context="perf"))
        out.append(nagiosplugin.Metric("vips_ok", good, min=0, max=len(self.topology.vips), context="perf"))
        return out


def judge_site(vip: Vip, holders: list[str], region_of: dict[str, str]) -> model.Finding:
    """Nobody or twice: CRITICAL; another region: CRITICAL; not its MASTER: WARNING."""
    what = f"{vip.name} ({vip.address})"
    if not holders:
        return Critical, f"{what} held by nobody"
    if len(holders) > 1:
        return Critical, f"{what} held twice: {', '.join(sorted(holders))}"
    holder = holders[0]
    if region_of.get(holder) != vip.region:
        return Critical, f"{what} of region {vip.region} held by {holder} of region {region_of.get(holder)}"
    if holder != vip.master:
        return Warn, f"{what} held by {holder}, its MASTER {vip.master} does not hold it"
    return Ok, f"{what} on {holder}"


def _observations(topology: Topology, observe: dict[str, str], extra: dict[str, set[str]]) -> dict[str, set[str]]:
    proxies = [h.name for h in topology.with_role("keepalived")]
    unknown = sorted(set(observe) - {h.name for h in topology.hosts})
    if unknown:
        raise ProbeUnknown(f"--observe for unknown host {', '.join(unknown)}")
    observed = {h: {a.strip() for a in v.split(",") if a.strip()} for h, v in observe.items()}
    observed.update(extra)
    missing = [p for p in proxies if p not in observed]
    if missing:
        raise ProbeUnknown(
            f"no observation for {', '.join(missing)}: give --observe HOST=IP,… for every "
            f"keepalived host ({len(proxies)})"
        )
    return observed


def main(
    args: ProbeArgs, *, host_name: str | None, all_hosts: bool, observe: dict[str, str], addr_json: Path | None
) -> int:
    """Run the probe; return the exit code."""

    def make(deadline: Deadline) -> nagiosplugin.Check:
        from toolkit.probes import targets

        model_ = args.required_model()
        if not model_.vips:
            raise ProbeUnknown(f"{args.topology} has no VIPs")
        if all_hosts:
            extra = {}
            if host_name is not None:
                extra[targets.host(model_, host_name, "keepalived").name] = local_addresses(addr_json, deadline)
            resource: nagiosplugin.Resource = SiteVips(model_, _observations(model_, observe, extra))

            def ok_text(results: nagiosplugin.Results) -> str:
                return f"all {len(model_.vips)} VIPs held once, each by its MASTER"
        else:
            if observe:
                raise ProbeUnknown("--observe needs --all")
            name = host_name or _this_host(model_)
            me = targets.host(model_, name, "keepalived")
            resource = HostVips(model_, me, lambda: local_addresses(addr_json, deadline))
            mine = [v.name for v in model_.vips if v.master == me.name]

            def ok_text(results: nagiosplugin.Results) -> str:
                return f"{me.name} holds exactly its MASTER VIPs ({', '.join(mine) or 'none'})"

        return model.check(NAME, ok_text, resource, nagiosplugin.ScalarContext("perf"))

    return execute(NAME, make, timeout=args.timeout, verbose=args.verbose)


def _this_host(topology: Topology) -> str:
    """This machine's name in the topology: the hostname, or its first label."""
    full = socket.gethostname()
    for candidate in (full, full.split(".")[0]):
        if any(h.name == candidate for h in topology.hosts):
            return candidate
    raise ProbeUnknown(f"hostname {full!r} is not in the topology: give --host NAME")
