"""`kgt probe haproxy`: one proxy's backends, read from its stats CSV.

Reads `http://HOST:8404/stats/;csv;norefresh` (basic auth kgt:<haproxy_stats_password>)
through the haproxy-stats package, or `show stat` on the admin socket with `--socket`.
HAProxy sends a listener's traffic to its active servers that are up, else to the first
backup that is up (kgt never sets `allbackups`); that server is "the one serving".

States
- CRITICAL: a backend with no server up (more generally: servers up outside -c, default
  `1:`); the write listener served by a read-only fallback (no writer reachable: the
  region is read-only); a backend the topology expects is missing; the stats listener
  unreachable or not answering in time (it lives in the HAProxy process: no stats, no proxy).
- WARNING: a region's Galera or Keystone traffic served by a server of another region
  (its own servers are all down: names the region serving it); servers up outside -w.
  Without a topology regions are unknown, so any backup serving is a WARNING.
- UNKNOWN: credentials rejected (401), not a stats CSV, bad arguments, no result within -t.

Perfdata per backend B: `B_up` (servers up, read-only fallbacks not counted; -w/-c; max =
servers), `B_sessions`
(current sessions), `B_check` (slowest health check, ms).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nagiosplugin

from toolkit import haproxy_names
from toolkit.errors import ProbeUnknown, TargetUnreachable
from toolkit.probes import model
from toolkit.probes.model import Critical, Ok, Warn
from toolkit.probes.runtime import Deadline, ProbeArgs, execute, reason

NAME = "kgt haproxy"


@dataclass(frozen=True)
class Server:
    """One server line of a backend."""

    name: str
    status: str
    backup: bool
    sessions: int
    check_ms: int | None

    @property
    def up(self) -> bool:
        """UP (also `UP 1/3`, going down but still up), NOLB, or a server without checks."""
        word = self.status.split(" ")[0]
        return word in ("UP", "NOLB") or self.status == "no check"

    @property
    def read_only(self) -> bool:
        """A read-only fallback of the write listener (serves only when no writer is up)."""
        return haproxy_names.is_read_only(self.name)

    @property
    def node(self) -> str:
        """The host behind the server."""
        return haproxy_names.node_of(self.name)


@dataclass(frozen=True)
class StatsBackend:
    """One backend (or listen section) with its servers in configuration order."""

    name: str
    sessions: int
    servers: tuple[Server, ...]

    @property
    def serving(self) -> tuple[Server, ...]:
        """The servers that get traffic: active ones up, else the first backup up."""
        active = tuple(s for s in self.servers if s.up and not s.backup)
        if active:
            return active
        return next(((s,) for s in self.servers if s.up and s.backup), ())


def _int(value: Any) -> int:
    return value if isinstance(value, int) else int(value) if str(value).isdigit() else 0


def parse(stats: Any) -> list[StatsBackend]:
    """Backends of a haproxystats.HAProxyServer (servers matched to backends by iid)."""
    out = []
    for backend in stats.backends:
        servers = tuple(
            Server(
                str(s.svname),
                str(getattr(s, "status", "")),
                _int(getattr(s, "bck", 0)) == 1,
                _int(getattr(s, "scur", 0)),
                _int(s.check_duration) if str(getattr(s, "check_duration", "")).isdigit() else None,
            )
            for s in backend.listeners
        )
        out.append(StatsBackend(str(backend.pxname), _int(getattr(backend, "scur", 0)), servers))
    return out


def _http_stats(url: str, user: str, password: str, deadline: Deadline) -> Any:
    import haproxystats
    import requests

    class Stats(haproxystats.HAProxyServer):  # type: ignore[misc]
        """The library's session, URL and parser; errors raised instead of logged."""

        def _fetch(self) -> str:
            # Straight to the proxy: no http_proxy or .netrc from the monitoring host's environment.
            self._session.trust_env = False
            try:
                response = self._session.get(self.url, timeout=deadline.budget(), verify=self.verify)
            except requests.Timeout:
                raise TargetUnreachable(f"stats at {url} did not answer within {deadline.seconds:g}s") from None
            except requests.RequestException as exc:
                raise TargetUnreachable(f"stats at {url} unreachable: {reason(exc)}") from None
            if response.status_code == 401:
                raise ProbeUnknown(f"stats at {url} rejected the credentials of {user}")
            if not response.ok:
                raise TargetUnreachable(f"stats at {url} answered HTTP {response.status_code}")
            return _checked(response.text, url)

    scheme, _, rest = url.partition("://")
    if not rest:
        raise ProbeUnknown(f"--url must be http(s)://HOST:PORT/PATH, got {url!r}")
    return Stats(rest.rstrip("/"), user, password, timeout=deadline.budget(), https=scheme == "https")


def _socket_stats(path: Path, deadline: Deadline) -> Any:
    import haproxystats

    class SocketStats(haproxystats.HAProxyServer):  # type: ignore[misc]
        """The library's parser over `show stat` from the admin socket."""

        def __init__(self) -> None:
            self.name, self.failed = str(path), False
            self.update()

        def _fetch(self) -> str:
            chunks = []
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(deadline.budget())
                    sock.connect(str(path))
                    sock.sendall(b"show stat\n")
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
            except TimeoutError:
                raise TargetUnreachable(f"admin socket {path} did not answer within {deadline.seconds:g}s") from None
            except OSError as exc:
                raise TargetUnreachable(f"admin socket {path} unreachable: {exc.strerror or exc}") from None
            return _checked(b"".join(chunks).decode("utf-8", "replace"), str(path))

    return SocketStats()


def _checked(text: str, where: str) -> str:
    if not text.lstrip().startswith("# pxname"):
        raise ProbeUnknown(f"{where} did not return an HAProxy stats CSV")
    return text


class Proxy(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """One HAProxy's stats: backends, servers up, who serves each region's traffic."""

    def __init__(
        self,
        label: str,
        read: Callable[[], Any],
        region: str | None,
        region_of: dict[str, str],
        expected: tuple[str, ...] | None,
    ) -> None:
        self.label, self.read, self.region = label, read, region
        self.region_of, self.expected = region_of, expected

    def probe(self) -> list[nagiosplugin.Metric]:
        """Metrics and findings of every backend that has servers (or that is expected)."""
        try:
            backends = {b.name: b for b in parse(self.read())}
        except TargetUnreachable as exc:
            return [model.finding("stats", Critical, f"{self.label}: {exc}")]
        out: list[nagiosplugin.Metric] = []
        names = self.expected if self.expected is not None else tuple(n for n, b in backends.items() if b.servers)
        for name in names:
            backend = backends.get(name)
            if backend is None:
                out.append(
                    model.finding(
                        f"{name}_missing",
                        Critical,
                        f"{name}: missing from the stats of {self.label} (the topology expects it)",
                    )
                )
                continue
            out += self.backend_metrics(backend)
        if not names:
            out.append(model.finding("backends", Critical, f"{self.label}: no backend with servers"))
        return out

    def backend_metrics(self, backend: StatsBackend) -> list[nagiosplugin.Metric]:
        """servers up (judged), who serves (finding), sessions and check time (perfdata)."""
        # A read-only fallback is a node counted already (or a reader, not a writer): not a server up.
        servers = [s for s in backend.servers if not s.read_only]
        up = sum(1 for s in servers if s.up)
        out = [
            nagiosplugin.Metric(f"{backend.name}_up", up, min=0, max=len(servers), context="servers_up"),
            model.finding(f"{backend.name}_serving", *self.serving_finding(backend)),
            nagiosplugin.Metric(f"{backend.name}_sessions", backend.sessions, min=0, context="perf"),
        ]
        checks = [s.check_ms for s in backend.servers if s.check_ms is not None]
        if checks:
            out.append(nagiosplugin.Metric(f"{backend.name}_check", max(checks), "ms", min=0, context="perf"))
        return out

    def serving_finding(self, backend: StatsBackend) -> model.Finding:
        """Who serves the backend, and whether that is another region's server."""
        serving = backend.serving
        if not serving:
            return Ok, f"{backend.name}: nobody serving"  # judged by servers_up
        names = ", ".join(s.name for s in serving)
        if serving[0].read_only:
            where = f" of {self.region}" if self.region else ""
            return Critical, (
                f"{backend.name}{where} read-only: no writer reachable, {serving[0].node} "
                f"serves reads only (writes fail)"
            )
        foreign = [s for s in serving if self.region and self.region_of.get(s.node, self.region) != self.region]
        if foreign:
            other = self.region_of[foreign[0].node]
            return Warn, (
                f"{backend.name} of {self.region} served by region {other} "
                f"({foreign[0].name}, backup): {self.region}'s servers are down"
            )
        if self.region is None and any(s.backup for s in serving):
            return Warn, f"{backend.name} served by backup {names} (no topology: region unknown)"
        return Ok, f"{backend.name} served by {names}"


class _ServersUp(model.Scalar):
    def evaluate(self, metric: nagiosplugin.Metric, resource: Any) -> nagiosplugin.Result:
        backend = metric.name.removesuffix("_up")
        for state, bound in ((Critical, self.critical), (Warn, self.warning)):
            if not bound.match(metric.value):
                text = (
                    f"{backend}: no server up (of {metric.max})"
                    if metric.value == 0
                    else f"{backend}: {metric.value}/{metric.max} servers up, outside {bound}"
                )
                return nagiosplugin.Result(state, text, metric)
        return nagiosplugin.Result(Ok, f"{backend}: {metric.value}/{metric.max} up", metric)


def main(
    args: ProbeArgs, *, url: str | None, host: str | None, port: int | None, socket_path: Path | None, proxy: str | None
) -> int:
    """Run the probe; return the exit code."""

    def make(deadline: Deadline) -> nagiosplugin.Check:
        from toolkit.probes import targets

        region, region_of, expected, label = None, {}, None, url or host or str(socket_path or "")
        address, stats_port, model_ = host, port, args.model()
        if model_ is not None:
            name = proxy or next((h.name for h in model_.with_role("haproxy") if str(h.address) == host), None)
            if name is None:
                raise ProbeUnknown("with a topology, name the proxy: --proxy NAME")
            me = targets.host(model_, name, "haproxy")
            label, region = me.name, me.region
            address, stats_port = address or str(me.address), stats_port or me.settings.haproxy.stats_port
            region_of = {h.name: h.region for h in model_.hosts}
            names = haproxy_names
            expected = (names.WRITE, names.READ) + ((names.KEYSTONE,) if model_.with_role("keystone") else ())
        elif proxy:
            raise ProbeUnknown("--proxy needs a topology (the first argument)")
        if socket_path is not None:

            def read() -> Any:
                return _socket_stats(socket_path, deadline)
        else:
            if url is None and not address:
                raise ProbeUnknown("give --url, -H HOST, --socket PATH, or TOPOLOGY --proxy NAME")
            stats_url = url or f"http://{address}:{stats_port or 8404}/stats"
            secret = args.password(model_, "haproxy_stats_password")

            def read() -> Any:
                return _http_stats(stats_url, args.user, secret, deadline)

        def ok_text(results: nagiosplugin.Results) -> str:
            parts = [str(r) for r in results if r.metric is not None and r.metric.name.endswith("_serving")]
            return f"{label}: " + "; ".join(parts)

        return model.check(
            NAME,
            ok_text,
            Proxy(label, read, region, region_of, expected),
            _ServersUp("servers_up", args.warning, args.critical),
            nagiosplugin.ScalarContext("perf"),
        )

    return execute(NAME, make, timeout=args.timeout, verbose=args.verbose)
