"""Is the site healthy enough to drill? Every reason it is not, each in one line.

A drill refuses to start unless every Galera node is Primary and Synced in a cluster of
the full size, every HAProxy server is UP, every VIP sits on its MASTER alone, no WAN
fault is left, every service runs, and Keystone answers through every region's endpoint.
After healing, the drill waits for the same conditions ("time to healthy").
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from toolkit import tlsclient
from toolkit.check import nodes
from toolkit.drills.backend import Backend
from toolkit.drills.monitor import haproxy_servers
from toolkit.drills.workloads import keystone_endpoints
from toolkit.errors import DeadlineExceeded
from toolkit.retry import poll
from toolkit.topology.model import Host, Topology

if TYPE_CHECKING:
    from toolkit.secretstore import Secrets


def galera_problems(topology: Topology, secrets: Secrets) -> list[str]:
    """Nodes not Primary/Synced, or not in a cluster of every voter."""
    expected = len(topology.voters)
    out = []
    for r in nodes.probe_all(
        topology.galera_nodes, nodes.HEALTH_USER, secrets["health_password"], 5.0, topology.client_ca
    ):
        if not r.answered:
            out.append(f"{r.host}: Galera does not answer ({r.error_class}: {r.error})")
        elif not r.synced or r.cluster_size != expected:
            out.append(
                f"{r.host}: {r.cluster_status}/{r.local_state}/size={r.cluster_size}, "
                f"want Primary/Synced/size={expected}"
            )
    return out


def haproxy_problems(topology: Topology, secrets: Secrets) -> list[str]:
    """Servers not UP on any proxy."""
    proxies = topology.with_role("haproxy")
    if not proxies:
        return []
    password = secrets["haproxy_stats_password"]

    def one(host: Host) -> list[str]:
        try:
            servers = haproxy_servers(host, password, timeout=3.0)
        except Exception as exc:
            return [f"{host.name}: HAProxy stats unreadable ({exc.__class__.__name__}: {exc})"]
        down = sorted(k for k, v in servers.items() if v != "UP")
        return [f"{host.name}: HAProxy servers not UP: {', '.join(f'{k} {servers[k]}' for k in down)}"] if down else []

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [p for found in pool.map(one, proxies) for p in found]


def keystone_problems(topology: Topology) -> list[str]:
    """Regions whose endpoint does not answer GET /v3 with 200."""
    out = []
    for e in keystone_endpoints(topology):
        conn = tlsclient.http_connection(e.address, e.port, 5, e.ca)
        try:
            conn.request("GET", "/v3")
            status = conn.getresponse().status
            if status != 200:
                out.append(f"Keystone through {e.name} {e.where}: HTTP {status}")
        except (OSError, http.client.HTTPException) as exc:
            out.append(f"Keystone through {e.name} {e.where}: {exc.__class__.__name__}: {exc}")
        finally:
            conn.close()
    return out


def problems(topology: Topology, secrets: Secrets, backend: Backend) -> list[str]:
    """Every reason the site is not healthy (empty: healthy).

    The cheap checks (SQL, HTTP) run first; the backend's (one command per host) only
    when they pass, so polling for health does not load a site that is still healing.
    """
    with ThreadPoolExecutor(max_workers=3) as pool:
        parts = [
            pool.submit(galera_problems, topology, secrets),
            pool.submit(haproxy_problems, topology, secrets),
            pool.submit(keystone_problems, topology),
        ]
        found = [p for part in parts for p in part.result()]
    return found or backend.problems()


def wait_healthy(
    topology: Topology, secrets: Secrets, backend: Backend, timeout: float, stop: Callable[[], bool] = lambda: False
) -> tuple[float | None, list[str]]:
    """Poll until healthy: (seconds it took, []) or (None, the last problems) after `timeout` or once `stop()`."""
    started = time.monotonic()
    found: list[str] = []

    def healthy() -> bool:
        found[:] = problems(topology, secrets, backend)
        return not found

    try:
        poll(healthy, timeout=timeout, what="a healthy site", every=1.0, retry_on=(), stop=stop)
    except DeadlineExceeded:  # or Stopped
        return None, found
    return time.monotonic() - started, []
