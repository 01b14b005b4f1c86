"""`kgt lab up`: render, start the containers, then every service in dependency order.

Each step has a readiness gate with a deadline; a step that does not become ready fails
with the step, the host and the tail of that service's log. Progress is one line per
step with the elapsed time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml

from toolkit.errors import LabError
from toolkit.lab import compose, docker, network, services
from toolkit.lab.host import LabHost
from toolkit.lab.state import LabState
from toolkit.render import context as ctx
from toolkit.retry import DeadlineExceeded, poll
from toolkit.secretstore import Secrets
from toolkit.topology.model import Host, Topology

Echo = Callable[[str], None]


@dataclass
class Progress:
    """Prints `[  12.3s] step: message` lines and keeps per-step durations."""

    echo: Echo
    started: float = field(default_factory=time.monotonic)
    steps: dict[str, float] = field(default_factory=dict)
    _step_start: float = 0.0

    def begin(self, step: str) -> None:
        """Start timing a step."""
        self._step_start = time.monotonic()
        self.echo(f"[{time.monotonic() - self.started:6.1f}s] {step} ...")

    def done(self, step: str, message: str) -> None:
        """Finish a step."""
        took = time.monotonic() - self._step_start
        self.steps[step] = round(took, 2)
        self.echo(f"[{time.monotonic() - self.started:6.1f}s] {step}: {message} ({took:.1f}s)")


def _wait(what: str, step: str, h: LabHost, service: str, check: Callable[[], object], timeout: float) -> None:
    try:
        poll(check, timeout=timeout, what=what, interval=0.3, max_interval=1.0)
    except DeadlineExceeded as exc:
        tail = h.log_tail(service).rstrip()
        raise LabError(
            f"step {step}: host {h.name}: {what} not ready after {timeout:.0f}s\n"
            f"--- last lines of {service} log on {h.name}:\n{tail or '(empty)'}"
        ) from exc


def _holds(h: LabHost, address: str) -> bool:
    return address in services.held_vips(h)


def _listening(h: LabHost, port: int) -> bool:
    return h.run(f"nc -z -w 1 $(hostname -i) {port}").ok


def _resolves(h: LabHost, server: str, name: str) -> bool:
    return bool(h.run(f"dig +short +time=1 @{server} {name} A").stdout.strip())


@dataclass
class Booter:
    """Brings a rendered topology up, step by step."""

    topology: Topology
    secrets: Secrets
    state: LabState
    progress: Progress

    def host(self, host: Host | str) -> LabHost:
        """The container of a host."""
        return LabHost(host if isinstance(host, str) else host.name)

    def containers(self, source: Path) -> None:
        """Write the compose file and start every container idle."""
        step = "containers"
        self.progress.begin(step)
        _own_files(self.state.rendered)
        document = compose.build(self.topology, self.state.rendered, source)
        self.state.compose_file.write_text(yaml.safe_dump(document, sort_keys=True))
        result = docker.compose(self.state.compose_file, self.state.project, "up", "-d", "--no-build", timeout=300)
        if not result.ok:
            raise LabError(f"step {step}: docker-compose up failed: {result.stderr.strip()[-1500:]}")
        self.progress.done(step, f"{len(document['services'])} containers on {compose.LAB_NETWORK} (internal)")

    def wan(self) -> None:
        """Start the WAN router and route every container's cross-region traffic through it."""
        step = "wan-router"
        self.progress.begin(step)
        network.start_router(self.topology)
        network.route_regions(self.topology)
        self.progress.done(step, "cross-region traffic goes through the WAN router (delay 0)")

    def galera(self) -> None:
        """Bootstrap the first node, run the bootstrap SQL, join the rest region by region."""
        nodes = self.topology.galera_nodes
        first = nodes[0]
        step = "galera-bootstrap"
        self.progress.begin(step)
        h = self.host(first)
        services.start_galera(h, bootstrap=True)
        _wait("Primary and Synced", step, h, "mariadb", lambda: services.is_synced(h), 120)
        sql = (self.state.rendered / "sql" / "bootstrap.sql").read_text()
        result = h.run("mariadb", input=sql, timeout=60)
        if not result.ok:
            raise LabError(f"step {step}: host {first.name}: bootstrap SQL failed: {result.stderr.strip()}")
        self.progress.done(step, f"{first.name} bootstrapped a new cluster")
        for node in nodes[1:]:
            step = f"galera-join {node.name}"
            self.progress.begin(step)
            hn = self.host(node)
            services.start_galera(hn)
            _wait("Synced", step, hn, "mariadb", partial(services.is_synced, hn), 240)
            self.progress.done(
                step, f"joined region {node.region} (segment {self.topology.region(node.region).segment})"
            )
        step = "galera-size"
        self.progress.begin(step)
        expected = len(nodes) + len(self.topology.with_role("garbd"))
        self.garbd()
        _wait(
            f"wsrep_cluster_size={expected}",
            step,
            h,
            "mariadb",
            lambda: services.galera_status(h).get("wsrep_cluster_size") == str(expected),
            120,
        )
        self.progress.done(step, f"wsrep_cluster_size={expected} on {first.name}")

    def garbd(self) -> None:
        """Start every arbitrator."""
        for host in self.topology.with_role("garbd"):
            services.start_garbd(self.host(host))

    def health(self) -> None:
        """Start the health endpoint on every Galera node and wait for /write to answer 200."""
        step = "health"
        self.progress.begin(step)
        for node in self.topology.galera_nodes:
            services.start_health(self.host(node), node)
        for node in self.topology.galera_nodes:
            url = f"http://{node.address}:{node.settings.galera.health_port}/write"
            _wait(f"{url} 200", step, self.host(node), "kgt-health", partial(services.http_ok, url), 60)
        self.progress.done(step, f"{len(self.topology.galera_nodes)} endpoints answer /write 200")

    def proxies(self) -> None:
        """HAProxy everywhere, then keepalived, then wait until each VIP sits on its MASTER."""
        step = "haproxy"
        self.progress.begin(step)
        proxies = self.topology.with_role("haproxy")
        for host in proxies:
            services.start_haproxy(self.host(host))
        for host in proxies:
            url = f"http://{host.address}:{host.settings.haproxy.stats_port}/healthz"
            _wait(f"{url} 200", step, self.host(host), "haproxy", partial(services.http_ok, url), 60)
        self.progress.done(step, f"{len(proxies)} proxies up")
        step = "keepalived"
        self.progress.begin(step)
        for host in self.topology.with_role("keepalived"):
            services.start_keepalived(self.host(host))
        for vip in self.topology.vips:
            if vip.master:
                hm = self.host(vip.master)
                _wait(
                    f"VIP {vip.address} on {vip.master}",
                    step,
                    hm,
                    "keepalived",
                    partial(_holds, hm, str(vip.address)),
                    60,
                )
        self.progress.done(step, f"{len(self.topology.vips)} VIPs held by their MASTER")

    def memcached(self) -> None:
        """memcached on every memcached host."""
        step = "memcached"
        self.progress.begin(step)
        hosts = self.topology.with_role("memcached")
        for host in hosts:
            services.start_memcached(self.host(host))
        for host in hosts:
            h = self.host(host)
            _wait(
                "memcached listening",
                step,
                h,
                "memcached",
                partial(_listening, h, host.settings.memcached.port),
                30,
            )
        self.progress.done(step, f"{len(hosts)} servers")

    def keystone(self) -> None:
        """db_sync and key setup once, keys copied everywhere, bootstrap every region, then serve."""
        hosts = self.topology.with_role("keystone")
        if not hosts:
            return
        first = self.host(hosts[0])
        step = "keystone-setup"
        self.progress.begin(step)
        try:
            services.keystone_manage(first, "db_sync")
            for repo in ("fernet_setup", "credential_setup"):
                services.keystone_manage(first, f"{repo} --keystone-user root --keystone-group root")
            keys = self.state.path / "keys"
            keys.mkdir(parents=True, exist_ok=True)
            for repo in ("fernet-keys", "credential-keys"):
                fetched = docker.docker("cp", f"{first.name}:/etc/keystone/{repo}", str(keys), timeout=30)
                if not fetched.ok:
                    raise RuntimeError(f"reading {repo} on {first.name} failed: {fetched.stderr.strip()}")
                for other in hosts[1:]:
                    copied = docker.docker("cp", str(keys / repo), f"{other.name}:/etc/keystone/", timeout=30)
                    if not copied.ok:
                        raise RuntimeError(f"copying {repo} to {other.name} failed: {copied.stderr.strip()}")
            password = self.secrets["keystone_admin_password"]
            for region in self.topology.regions:
                if not region.with_role("keystone") and not region.vips:
                    continue
                url = ctx.keystone_url(self.topology, region)
                services.keystone_manage(
                    first,
                    f"bootstrap --bootstrap-region-id {region.name} "
                    f"--bootstrap-admin-url {url} --bootstrap-public-url {url} --bootstrap-internal-url {url}",
                    secret_env=("OS_BOOTSTRAP_PASSWORD", password),
                )
        except RuntimeError as exc:
            raise LabError(f"step {step}: host {first.name}: {exc}") from exc
        self.progress.done(step, f"schema, Fernet keys on {len(hosts)} hosts, {len(self.topology.regions)} regions")
        step = "keystone"
        self.progress.begin(step)
        for host in hosts:
            services.start_keystone(self.host(host), host)
        for host in hosts:
            url = f"http://{host.address}:{host.settings.keystone.port}/v3"
            _wait(f"{url} 200", step, self.host(host), "keystone", partial(services.http_ok, url, 5), 120)
        for region in self.topology.regions:
            for vip in region.vips:
                url = f"http://{vip.address}:{region.hosts[0].settings.haproxy.keystone_port}/v3"
                _wait(
                    f"{url} 200 through HAProxy",
                    step,
                    self.host(vip.master or hosts[0].name),
                    "haproxy",
                    partial(services.http_ok, url, 5),
                    60,
                )
        self.progress.done(step, f"{len(hosts)} API servers, every VIP answers /v3")

    def dns(self) -> None:
        """BIND on every dns host, answering for the zone."""
        hosts = self.topology.with_role("dns")
        if not hosts:
            return
        step = "dns"
        self.progress.begin(step)
        for host in hosts:
            h = self.host(host)
            services.start_named(h)
            name = f"{self.topology.regions[0].name}.{self.topology.domain}"
            _wait(
                f"named answers {name}",
                step,
                h,
                "named",
                partial(_resolves, h, str(host.address), name),
                60,
            )
        self.progress.done(step, f"{len(hosts)} servers answer for {self.topology.domain}")


def _own_files(rendered: Path) -> None:
    """Give rendered files the owner the manifest names, as that user's ids inside the image.

    Files are bind-mounted, so their host-side owner is what services in the container see
    (a 0600 file for mysql must belong to the image's mysql uid).
    """
    files = json.loads((rendered / "manifest.json").read_text())["files"]
    ids: dict[str, tuple[int, int]] = {}
    for owner in sorted({f["owner"] for f in files} - {"root"}):
        result = docker.docker(
            "run", "--rm", "--network", "none", docker.IMAGE, "sh", "-c", f"id -u {owner} && id -g {owner}", timeout=60
        )
        if result.ok:
            uid, gid = (int(x) for x in result.stdout.split()[:2])
            ids[owner] = (uid, gid)
    for f in files:
        if f["owner"] in ids:
            os.chown(rendered / f["path"], *ids[f["owner"]])


def up(topology: Topology, secrets: Secrets, state: LabState, source: Path, echo: Echo) -> dict[str, float]:
    """Boot the whole lab; return seconds per step. Raises LabError on the first failed step."""
    progress = Progress(echo)
    booter = Booter(topology, secrets, state, progress)
    booter.containers(source)
    booter.wan()
    booter.galera()
    booter.health()
    booter.proxies()
    booter.memcached()
    booter.keystone()
    booter.dns()
    total = time.monotonic() - progress.started
    state.save_timings({**progress.steps, "total": round(total, 2)})
    echo(f"[{total:6.1f}s] lab {state.project} is up: {json.dumps({'hosts': len(topology.hosts)})}")
    return progress.steps
