"""`kgt probe dns`: every regional endpoint name resolves to exactly the topology's VIPs.

The names are those of the rendered zone (`toolkit.render.zone.endpoint_names`):
`<region>`, `keystone.<region>`, `db.<region>` (the region's VIPs) and `keystone` (every
VIP), each under the topology's domain. Asked with dnspython, of `--server` (port `-p`)
or of the system resolver; A records only (VIPs are IPv4).

States
- CRITICAL: a name with a missing or an extra address, or that does not exist
  (NXDOMAIN / no A record); the server not answering within the budget or failing
  (SERVFAIL, REFUSED): clients cannot find the endpoints, which is an outage;
  resolve time outside -c.
- WARNING: resolve time outside -w.
- UNKNOWN: nothing to check, bad arguments, no result within -t.

`-w/-c` judge the slowest resolve time in seconds. Perfdata: `resolve_time` (s, the
slowest name), `names_ok` (names whose addresses match; max = names checked).
"""

from __future__ import annotations

import time
from pathlib import Path

import nagiosplugin

from toolkit.errors import ProbeUnknown
from toolkit.probes import model
from toolkit.probes.model import Critical, Ok
from toolkit.probes.runtime import Deadline, ProbeArgs, execute

NAME = "kgt dns"


class Names(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """The endpoint names, resolved one by one."""

    def __init__(self, expected: dict[str, set[str]], server: str | None, port: int, deadline: Deadline) -> None:
        self.expected, self.server, self.port, self.deadline = expected, server, port, deadline

    def resolver(self) -> object:
        """A resolver asking `--server`, else the system's."""
        import dns.resolver

        if self.server is None:
            return dns.resolver.Resolver()
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.server]
        resolver.port = self.port
        return resolver

    def probe(self) -> list[nagiosplugin.Metric]:
        """One finding per name, then the slowest time and the count of good names."""
        import dns.exception
        import dns.resolver

        resolver = self.resolver()
        where = f"{self.server}:{self.port}" if self.server else "the system resolver"
        out: list[nagiosplugin.Metric] = []
        slowest, good = 0.0, 0
        for name, want in self.expected.items():
            started = time.monotonic()
            try:
                answer = resolver.resolve(  # type: ignore[attr-defined]
                    name,
                    "A",
                    lifetime=self.deadline.budget(),
                    raise_on_no_answer=False,
                    search=False,
                )
                got = {r.address for r in answer} if answer.rrset is not None else set()
                problem = "" if got else "no A record"
            except dns.resolver.NXDOMAIN:
                got, problem = set(), "does not exist (NXDOMAIN)"
            except dns.exception.Timeout:
                out.append(
                    model.finding("server", Critical, f"{where} did not answer for {name} within the time budget")
                )
                break
            except dns.resolver.NoNameservers as exc:
                out.append(model.finding("server", Critical, f"{where} failed for {name}: {_short(exc)}"))
                break
            slowest = max(slowest, time.monotonic() - started)
            out.append(model.finding(f"name_{name}", *judge(name, want, got, problem)))
            good += want == got
        out.append(nagiosplugin.Metric("resolve_time", round(slowest, 6), "s", min=0, context="latency"))
        out.append(nagiosplugin.Metric("names_ok", good, min=0, max=len(self.expected), context="perf"))
        return out


def _short(exc: BaseException) -> str:
    text = str(exc)
    for code in ("SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"):
        if code in text:
            return f"answered {code}"
    return " ".join(text.split())[:120]


def _show(addresses: set[str]) -> str:
    return ",".join(sorted(addresses, key=lambda a: tuple(int(p) for p in a.split("."))))


def judge(name: str, want: set[str], got: set[str], problem: str = "") -> model.Finding:
    """OK when the addresses are exactly the expected ones; CRITICAL naming what differs."""
    if want == got:
        return Ok, f"{name} -> {_show(got)}"
    if problem:
        return Critical, f"{name} {problem} (expected {_show(want)})"
    parts = []
    if want - got:
        parts.append(f"missing {_show(want - got)}")
    if got - want:
        parts.append(f"extra {_show(got - want)}")
    return Critical, f"{name}: {' and '.join(parts)}"


def expected_names(topology_path: Path | None, extra: dict[str, str]) -> dict[str, set[str]]:
    """Absolute name → addresses: the topology's endpoint names plus `--expect` ones."""
    out: dict[str, set[str]] = {}
    if topology_path is not None:
        from toolkit.probes import targets
        from toolkit.render.zone import endpoint_names

        topology = targets.load(topology_path)
        for relative, addresses in endpoint_names(topology).items():
            out[f"{relative}.{topology.domain.rstrip('.')}."] = set(addresses)
    for name, listed in extra.items():
        out[name if name.endswith(".") else name + "."] = {a.strip() for a in listed.split(",") if a.strip()}
    return out


def main(args: ProbeArgs, *, expected: dict[str, str], server: str | None, port: int) -> int:
    """Run the probe; return the exit code."""

    def make(deadline: Deadline) -> nagiosplugin.Check:
        names = expected_names(args.topology, expected)
        if not names:
            raise ProbeUnknown("nothing to check: give a topology (with VIPs) or --expect NAME=IP,…")

        def ok_text(results: nagiosplugin.Results) -> str:
            slowest = results["resolve_time"].metric.value
            return f"{len(names)} endpoint names resolve to their VIPs (slowest {slowest * 1000:.0f} ms)"

        return model.check(
            NAME,
            ok_text,
            Names(names, server, port, deadline),
            model.Scalar("latency", args.warning, args.critical, label="slowest resolve"),
            nagiosplugin.ScalarContext("perf"),
        )

    return execute(NAME, make, timeout=args.timeout, verbose=args.verbose)
