"""Monitors: what the cluster, HAProxy and keepalived say during a drill, sampled into the history.

Each monitored thing is a process of its own (`mon-HOST`), so its samples pair up like
any other operation:

- f `galera` (every Galera node, directly, as kgt_health): ok `{"status", "size", "state", "conf_id"}`;
- f `haproxy` (proxies of the faulted regions, their stats CSV): ok `{"LISTENER/SERVER": "UP"|"DOWN"|…}`;
- f `vip` (keepalived hosts of the faulted regions, `ip addr`): ok `["10.213.1.100", …]`.

The checker reads detection and resync times, and VIP moves, from these samples.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import threading
import urllib.request
from typing import TYPE_CHECKING, Any

from toolkit import db
from toolkit.check import sessions
from toolkit.check.history import History
from toolkit.check.nodes import HEALTH_USER, classify, one_line
from toolkit.drills.backend import Backend
from toolkit.haproxy_names import LISTENERS
from toolkit.topology.model import Host, Topology

if TYPE_CHECKING:
    from toolkit.secretstore import Secrets


def haproxy_servers(host: Host, password: str, timeout: float = 1.5) -> dict[str, str]:
    """`{"listener/server": status}` from a proxy's stats CSV (server rows of the kgt listeners)."""
    url = f"http://{host.address}:{host.settings.haproxy.stats_port}/stats;csv"
    request = urllib.request.Request(
        url, headers={"Authorization": "Basic " + base64.b64encode(f"kgt:{password}".encode()).decode()}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode(errors="replace")
    out = {}
    for row in csv.DictReader(io.StringIO(text.lstrip("# "))):
        listener, server = row.get("pxname", ""), row.get("svname", "")
        if listener in LISTENERS and server not in ("FRONTEND", "BACKEND"):
            out[f"{listener}/{server}"] = (row.get("status") or "").split(" ")[0]
    return out


class _Sampler(threading.Thread):
    def __init__(self, host: Host, f: str, history: History, stop: threading.Event, interval: float) -> None:
        # One history process per sampler, never per host: a proxy runs a haproxy and a vip
        # sampler at once, and a process has one operation open at a time (Jepsen's rule), so a
        # shared name paired one sampler's completion with the other's invocation.
        self.process = f"mon-{host.name}-{f}"
        super().__init__(name=self.process, daemon=True)
        self.host, self.f, self.history, self.stop_event, self.interval = host, f, history, stop, interval

    def sample(self) -> Any:
        """One observation (raises when the thing cannot be asked)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release whatever the sampler holds."""

    def run(self) -> None:
        """Sample every `interval` until stopped."""
        process = self.process
        try:
            while not self.stop_event.is_set():
                op = self.history.invoke(
                    process, self.f, region=self.host.region, host=self.host.name, address=str(self.host.address)
                )
                try:
                    value = self.sample()
                except Exception as exc:
                    self.history.complete(op, "fail", error=classify(exc), message=one_line(exc))
                    self.close()
                else:
                    self.history.complete(op, "ok", value)
                self.stop_event.wait(self.interval)
        finally:
            self.close()


class GaleraSampler(_Sampler):
    """wsrep status of one node over a kept connection."""

    def __init__(self, host: Host, password: str, history: History, stop: threading.Event, interval: float) -> None:
        super().__init__(host, "galera", history, stop, interval)
        self.password = password
        self.conn: Any = None

    def sample(self) -> dict[str, Any]:
        """SHOW STATUS over the kept connection (opened on demand)."""
        if self.conn is None:
            endpoint = db.Endpoint(str(self.host.address), self.host.settings.galera.port, HEALTH_USER, self.password)
            self.conn = db.connect(endpoint, connect_timeout=1.0, read_timeout=1.5, write_timeout=1.5)
        return sessions.read_status(self.conn)

    def close(self) -> None:
        """Drop the connection."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None


class HaproxySampler(_Sampler):
    """Server states of one proxy."""

    def __init__(self, host: Host, password: str, history: History, stop: threading.Event, interval: float) -> None:
        super().__init__(host, "haproxy", history, stop, interval)
        self.password = password

    def sample(self) -> dict[str, str]:
        """The stats CSV."""
        return haproxy_servers(self.host, self.password)


class VipSampler(_Sampler):
    """VIPs on one keepalived host."""

    def __init__(self, host: Host, backend: Backend, history: History, stop: threading.Event, interval: float) -> None:
        super().__init__(host, "vip", history, stop, interval)
        self.backend = backend

    def sample(self) -> list[str]:
        """`ip addr` through the backend."""
        return self.backend.vips_held(self.host)


class Monitors:
    """Every sampler of a drill."""

    def __init__(
        self,
        topology: Topology,
        backend: Backend,
        secrets: Secrets,
        history: History,
        regions: tuple[str, ...],
        vip_interval: float = 1.0,
        interval: float = 0.5,
    ) -> None:
        self.stop = threading.Event()
        health = secrets["health_password"]
        self.threads: list[_Sampler] = [
            GaleraSampler(h, health, history, self.stop, interval) for h in topology.galera_nodes
        ]
        watched = [h for r in topology.regions if r.name in regions for h in r.hosts]
        if topology.with_role("haproxy"):
            stats = secrets["haproxy_stats_password"]
            self.threads += [
                HaproxySampler(h, stats, history, self.stop, interval) for h in watched if h.has("haproxy")
            ]
        self.threads += [
            VipSampler(h, backend, history, self.stop, vip_interval) for h in watched if h.has("keepalived")
        ]

    def start(self) -> None:
        """Start sampling."""
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        """Stop sampling (each finishes its sample)."""
        self.stop.set()
        for t in self.threads:
            t.join(5)
