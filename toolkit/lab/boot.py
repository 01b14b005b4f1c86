"""`kgt lab up`: render, start the containers, then every service in dependency order.

Each step starts a service through `LabServices` (the one service interface, whose table in
`toolkit.services` holds each service's command, health check and boot gate) and waits
with a deadline; a step that does not become ready fails with the step, the host and the
tail of that service's log. Progress is one line per
step with the elapsed time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml

from toolkit import tlsclient
from toolkit.errors import LabError
from toolkit.lab import compose, docker, network, services
from toolkit.lab.host import LabHost, PidProcesses
from toolkit.lab.services import LabServices
from toolkit.lab.state import LabState
from toolkit.render import context as ctx
from toolkit.secretstore import Secrets
from toolkit.services import BOOTSTRAP, Gate, galera_args, http_ok, wsrep_status
from toolkit.topology import etcd as etcd_cluster
from toolkit.topology.model import Host, Topology
from toolkit.wsrep import NodeState

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


def _holds(h: PidProcesses, address: str) -> bool:
    return address in services.held_vips(h)


SIZE_GATE = Gate(120)  # the whole cluster (arbitrators included) seen by the first node
VIP_GATE = Gate(60)  # each VIP on its MASTER
PROXIED_GATE = Gate(60)  # Keystone through each VIP


@dataclass
class Booter:
    """Brings a rendered topology up, step by step, each service through `LabServices`."""

    topology: Topology
    secrets: Secrets
    state: LabState
    progress: Progress

    def host(self, host: Host | str) -> LabHost:
        """The container of a host."""
        return LabHost(host if isinstance(host, str) else host.name)

    def services(self, host: Host | str) -> LabServices:
        """The services of a host."""
        return LabServices(self.topology, self.topology.host(host) if isinstance(host, str) else host)

    def _wait(
        self, step: str, m: LabServices, service: str, check: Callable[[], object], what: str, gate: Gate
    ) -> None:
        with _in_step(step):
            m.wait_until(check, what=what, service=service, gate=gate)

    def _ready(self, step: str, m: LabServices, name: str) -> None:
        """Wait for a service's health, as long as its boot gate says (not at all without one)."""
        gate = m.spec(name).boot
        if gate is not None:
            with _in_step(step):
                m.wait_healthy(name, gate)

    def _serve(
        self,
        step: str,
        name: str,
        hosts: Sequence[Host],
        done: str | Callable[[], str],
        *,
        one_by_one: bool = False,
        then: Callable[[str], None] | None = None,
    ) -> None:
        """One step: start `name` on every host, then wait for each (`one_by_one`: start and
        wait host by host), then `then(step)` (the site-wide waits of the step), then say `done`
        (or what `done()` says once the step is over)."""
        self.progress.begin(step)
        managers = [self.services(host) for host in hosts]
        for m in managers:
            m.start(name)
            if one_by_one:
                self._ready(step, m, name)
        for m in () if one_by_one else managers:
            self._ready(step, m, name)
        if then is not None:
            then(step)
        self.progress.done(step, done if isinstance(done, str) else done())

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

    def firewall(self) -> None:
        """Load every host's rendered nftables ruleset before any service starts (if the topology has one)."""
        if not self.topology.firewall.enabled:
            return
        step = "firewall"
        self.progress.begin(step)
        with _in_step(step):
            for host in self.topology.hosts:
                network.load_firewall(self.topology, host)
        self.progress.done(step, f"{len(self.topology.hosts)} hosts accept only the flows the topology needs")

    def etcd(self) -> None:
        """Every etcd member at once (a new cluster elects a leader only once a majority of its
        members runs), then each healthy; the step names the leader. No step without members."""
        members = etcd_cluster.members(self.topology)
        if not members:
            return

        def done() -> str:
            with _in_step("etcd"):
                return f"{len(members)} members, leader {_etcd_leader(self.topology, members)}"

        self._serve("etcd", "etcd", members, done)

    def galera(self) -> None:
        """Bootstrap the first node, run the bootstrap SQL, join the rest region by region."""
        nodes = self.topology.galera_nodes
        first = nodes[0]
        step = "galera-bootstrap"
        self.progress.begin(step)
        m = self.services(first)
        m.start("mariadb", *galera_args(bootstrap=True))
        self._wait(step, m, "mariadb", partial(m.healthy, "mariadb"), "Primary and Synced", BOOTSTRAP)
        sql = (self.state.rendered / "sql" / "bootstrap.sql").read_text()
        result = m.shell.run("mariadb", input=sql, timeout=60)
        if not result.ok:
            raise LabError(f"step {step}: host {first.name}: bootstrap SQL failed: {result.stderr.strip()}")
        self.progress.done(step, f"{first.name} bootstrapped a new cluster")
        for node in nodes[1:]:
            segment = self.topology.region(node.region).segment
            self._serve(
                f"galera-join {node.name}", "mariadb", [node], f"joined region {node.region} (segment {segment})"
            )
        step = "galera-size"
        self.progress.begin(step)
        expected = len(nodes) + len(self.topology.with_role("garbd"))
        self.garbd()
        size = f"wsrep_cluster_size={expected}"
        self._wait(step, m, "mariadb", lambda: _size(m) == expected, size, SIZE_GATE)
        self.progress.done(step, f"{size} on {first.name}")

    def garbd(self) -> None:
        """Start every arbitrator."""
        for host in self.topology.with_role("garbd"):
            self.services(host).start("garbd")

    def health(self) -> None:
        """Start the health endpoint on every Galera node and wait for /write to answer 200."""
        nodes = self.topology.galera_nodes
        self._serve("health", "kgt-health", nodes, f"{len(nodes)} endpoints answer /write 200")

    def proxies(self) -> None:
        """HAProxy everywhere, then keepalived, then wait until each VIP sits on its MASTER."""
        proxies = self.topology.with_role("haproxy")
        self._serve("haproxy", "haproxy", proxies, f"{len(proxies)} proxies up")
        done = f"{len(self.topology.vips)} VIPs held by their MASTER"
        self._serve("keepalived", "keepalived", self.topology.with_role("keepalived"), done, then=self._vips_placed)

    def _vips_placed(self, step: str) -> None:
        """Wait until each VIP is on its MASTER."""
        for vip in self.topology.vips:
            if vip.master:
                hm = self.services(vip.master)
                check = partial(_holds, hm.shell, str(vip.address))
                self._wait(step, hm, "keepalived", check, f"VIP {vip.address} on {vip.master}", VIP_GATE)

    def memcached(self) -> None:
        """memcached on every memcached host."""
        hosts = self.topology.with_role("memcached")
        self._serve("memcached", "memcached", hosts, f"{len(hosts)} servers")

    def keystone(self) -> None:
        """db_sync and key setup once, keys copied everywhere, bootstrap every region, then serve."""
        hosts = self.topology.with_role("keystone")
        if not hosts:
            return
        self._keystone_setup(hosts)
        done = f"{len(hosts)} API servers, every VIP answers /v3"
        self._serve("keystone", "keystone", hosts, done, then=partial(self._proxied, hosts))

    def _proxied(self, hosts: Sequence[Host], step: str) -> None:
        """Wait until Keystone answers through every VIP."""
        for region in self.topology.regions:
            for vip in region.vips:
                url = ctx.vip_keystone_url(self.topology, vip)
                m = self.services(vip.master or hosts[0].name)
                ok = partial(http_ok, url, 5, self.topology.client_ca)
                self._wait(step, m, "haproxy", ok, f"{url} 200 through HAProxy", PROXIED_GATE)

    def _keystone_setup(self, hosts: Sequence[Host]) -> None:
        """db_sync, Fernet and credential keys on the first host, copied to the others, then bootstrap."""
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

    def dns(self) -> None:
        """BIND on every dns host, answering for the zone."""
        hosts = self.topology.with_role("dns")
        if hosts:
            done = f"{len(hosts)} servers answer for {self.topology.domain}"
            self._serve("dns", "named", hosts, done, one_by_one=True)


@contextmanager
def _in_step(step: str) -> Iterator[None]:
    """A LabError raised inside says which step of the boot it belongs to."""
    try:
        yield
    except LabError as exc:
        raise LabError(f"step {step}: {exc}") from exc


def _size(m: LabServices) -> int | None:
    return NodeState.from_rows(wsrep_status(m.shell)).cluster_size


def _etcd_gateway(topology: Topology, host: Host, path: str) -> dict[str, object]:
    """POST {} to a v3 gateway endpoint of `host`'s member (from here, verified against the site CA)."""
    conn = tlsclient.http_connection(str(host.address), host.settings.etcd.client_port, 5, topology.client_ca)
    try:
        conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise LabError(f"host {host.name}: etcd {path}: HTTP {response.status} {body[:200]!r}")
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError) as exc:
        raise LabError(f"host {host.name}: etcd {path}: {exc}") from exc
    finally:
        conn.close()


def _etcd_leader(topology: Topology, members: Sequence[Host]) -> str:
    """The name of the member the first member's status names its leader."""
    first = members[0]
    leader = _etcd_gateway(topology, first, "/v3/maintenance/status").get("leader")
    listed = _etcd_gateway(topology, first, "/v3/cluster/member/list").get("members")
    for member in listed if isinstance(listed, list) else []:
        if isinstance(member, dict) and member.get("ID") == leader:
            return str(member.get("name") or leader)
    raise LabError(f"host {first.name}: etcd leader {leader!r} is not in the member list")


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
    booter.firewall()
    booter.etcd()
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
