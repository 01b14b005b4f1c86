"""The lab's agents apply what `kgt publish` writes: an HAProxy change reaches every proxy as a graceful reload.

The lab boots with every host's agent running its first generation (`kgt lab up`'s
`agents` step). A test changes the site by publishing a variant of the example topology
(the same site, secrets and PKI) and puts the example back the same way at its end.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, TOPOLOGY, Lab, kgt
from tests.support.etcd import assert_need_to_know
from tests.support.topologies import example_variant
from toolkit import tlsclient
from toolkit.lab.host import LabHost
from toolkit.services import ROLE_SERVICES, SERVICES, Gate

pytestmark = pytest.mark.integration


def publish(path: Path) -> None:
    done = kgt("publish", str(path), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def wait(path: Path, timeout: str = "120s") -> None:
    done = kgt("rollout", "wait", str(path), "--timeout", timeout, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def restored(lab: Lab) -> Iterator[None]:
    """Whatever the test published, the example's own generation is back at its end."""
    try:
        yield
    finally:
        for service in ("mariadb", "haproxy", "keystone", "etcd"):  # a halt a failed test left
            kgt("rollout", "resume", service, str(TOPOLOGY), timeout=60)
        publish(TOPOLOGY)
        wait(TOPOLOGY)


class Clients:
    """A bounded client loop through every VIP's Keystone listener: GET /v3, counting what fails."""

    def __init__(self, lab: Lab) -> None:
        self.vips = [str(v.address) for v in lab.topology.vips]
        self.port = lab.topology.hosts[1].settings.haproxy.keystone_port
        self.ca = lab.topology.client_ca
        self.ok = 0
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        deadline = time.monotonic() + 120  # bounded whatever the test does
        while not self.stop.is_set() and time.monotonic() < deadline:
            for vip in self.vips:
                conn = tlsclient.http_connection(vip, self.port, 3.0, self.ca)
                try:
                    conn.request("GET", "/v3")
                    status = conn.getresponse().status
                    if status == 200:
                        self.ok += 1
                    else:
                        self.failed.append(f"{vip}: HTTP {status}")
                except OSError as exc:
                    self.failed.append(f"{vip}: {exc.__class__.__name__}: {exc}")
                finally:
                    conn.close()


def haproxy_pids(host: str) -> tuple[str, str]:
    """(master pid, its workers' pids) of a proxy's HAProxy."""
    out = LabHost(host).run("m=$(cat /run/kgt/haproxy.pid); echo $m; pgrep -P $m | sort | tr '\\n' ' '", timeout=15)
    master, workers = [*out.stdout.splitlines(), "", ""][:2]
    return master.strip(), workers.strip()


def watch_reload(proxy: str, workers: str, seen: dict[str, float]) -> None:
    """Note when `proxy` runs new HAProxy workers with `timeout connect 3s` (one look every ~0.1 s, 30 s at most)."""
    look = (
        "grep -q 'timeout connect 3s' /etc/haproxy/haproxy.cfg && "
        "pgrep -P $(cat /run/kgt/haproxy.pid) | sort | tr '\\n' ' '"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = LabHost(proxy).run(look, timeout=10)
        if out.ok and out.stdout.strip() and out.stdout.strip() != workers:
            seen[proxy] = time.monotonic()
            return
        time.sleep(0.2)


def test_an_haproxy_change_reaches_every_proxy_as_a_reload_within_5s_and_no_client_is_refused(
    lab: Lab, tmp_path: Path, restored: None
) -> None:
    proxies = [h.name for h in lab.topology.with_role("haproxy")]
    before = {p: haproxy_pids(p) for p in proxies}
    assert all(master and workers for master, workers in before.values()), before
    changed = example_variant(tmp_path, "defaults:\n", "defaults:\n  haproxy:\n    timeout_connect: 3s\n")
    clients = Clients(lab)
    clients.thread.start()
    try:
        time.sleep(1.0)  # the loop runs before the change
        reloaded: dict[str, float] = {}
        watchers = [threading.Thread(target=watch_reload, args=(p, before[p][1], reloaded)) for p in proxies]
        for w in watchers:
            w.start()
        publish(changed)
        published = time.monotonic()  # the generation is in etcd: from here on it is the agents' work
        for w in watchers:
            w.join(40)
        reloaded = {p: max(0.0, t - published) for p, t in reloaded.items()}
        wait(changed)
        time.sleep(1.0)  # and after it
    finally:
        clients.stop.set()
        clients.thread.join(30)
    assert sorted(reloaded) == sorted(proxies), f"not reloaded: {set(proxies) - set(reloaded)}"
    slowest = max(reloaded.values())
    print(
        f"published → every proxy reloaded: {slowest:.2f}s ({', '.join(f'{p} {t:.2f}' for p, t in reloaded.items())})"
    )
    assert slowest <= 5.0
    after = {p: haproxy_pids(p) for p in proxies}
    assert all(after[p][0] == before[p][0] for p in proxies), "a master changed: HAProxy was restarted, not reloaded"
    assert clients.ok > 50 and clients.failed == [], clients.failed[:5]


def start_marks(host: str) -> int:
    """How many times mariadbd was started on `host` (the lab log's `== start` marks)."""
    return int(LabHost(host).run("grep -c '^== start' /var/log/kgt/mariadb.log", timeout=15).stdout.strip() or 0)


class QuorumPoller:
    """Every 0.5 s: how many voters say they are in a Primary component (bounded in time)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.nodes = [str(h.address) for h in lab.topology.galera_nodes]
        self.samples: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def primary(self, address: str) -> bool:
        try:
            conn = self.lab.connect(address, timeout=1)
        except Exception:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'")
                row = cur.fetchone()
            return bool(row and row[1] == "Primary")
        except Exception:
            return False
        finally:
            conn.close()

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.samples.append(sum(self.primary(a) for a in self.nodes))
            self.stop.wait(0.5)


def agent_log(host: str) -> str:
    return LabHost(host).run("cat /var/log/kgt/kgt-agent.log", timeout=15).stdout


def test_a_galera_restart_setting_rolls_one_node_at_a_time_drained_region_by_region_losing_no_write(
    lab: Lab, tmp_path: Path, restored: None
) -> None:
    nodes = [h.name for h in lab.topology.galera_nodes]
    starts = {n: start_marks(n) for n in nodes}
    changed = example_variant(tmp_path, "    max_connections: 200\n", "    max_connections: 150\n")
    poller = QuorumPoller(lab)
    poller.thread.start()
    verify = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit.cli",
            "check",
            "verify",
            str(TOPOLOGY),
            "--duration",
            "90s",
            "--format",
            "json",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        started = time.monotonic()
        publish(changed)
        wait(changed, timeout="240s")
        rolled = time.monotonic() - started
        out, err = verify.communicate(timeout=300)
    finally:
        poller.stop.set()
        poller.thread.join(30)
        if verify.poll() is None:
            verify.kill()
            verify.wait(30)
    print(f"rolling restart of {len(nodes)} nodes: {rolled:.1f}s")
    assert verify.returncode == 0, out[-2000:] + err[-2000:]
    assert {n: start_marks(n) - starts[n] for n in nodes} == {n: 1 for n in nodes}
    for n in nodes:
        config = LabHost(n).run("grep -c '^max_connections *= *150' /etc/mysql/mariadb.conf.d/60-galera.cnf").stdout
        assert config.strip() == "1", n
    voters = len(lab.topology.voters)
    assert poller.samples and min(poller.samples) >= voters - 1, poller.samples
    assert min(poller.samples) == voters - 1  # a node really was down at some moment
    # one at a time, region by region, each drained first and undrained after it was Synced
    order = []
    for n in nodes:
        log = agent_log(n)
        drained = log.rfind(f"{n} drained")
        healthy = log.rfind(f"{n}: mariadb healthy after restart")
        undrained = log.rfind(f"{n} undrained")
        assert 0 <= drained < healthy < undrained, log[-2000:]
        stamp = re.findall(rf"^(\S+ \S+) .*{n}: mariadb healthy after restart", log, re.M)[-1]
        order.append((stamp, n))
    assert [n for _, n in sorted(order)] == nodes


def rollout_rows(path: Path) -> dict[str, dict[str, object]]:
    done = kgt("rollout", "status", str(path), "--format", "json", timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return {row["host"]: row for row in json.loads(done.stdout)}


def test_a_region_publish_reaches_only_that_region_and_a_whole_publish_completes_it(
    lab: Lab, tmp_path: Path, restored: None
) -> None:
    changed = example_variant(tmp_path, "defaults:\n", "defaults:\n  haproxy:\n    timeout_connect: 4s\n")
    before = rollout_rows(TOPOLOGY)
    done = kgt("publish", str(changed), "--region", "r1", timeout=120)
    assert done.returncode == 0, done.stderr
    done = kgt("rollout", "wait", str(changed), "--region", "r1", "--timeout", "60s", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = rollout_rows(changed)
    for host, row in rows.items():
        if host.startswith("r1-"):
            assert row["applied"] == row["published"] and row["published"] != before[host]["published"], row
        else:
            assert row["published"] == before[host]["published"] == row["applied"], row
    assert all(
        "timeout connect 4s" not in LabHost(p).run("cat /etc/haproxy/haproxy.cfg").stdout
        for p in ("r2-proxy1", "r3-proxy2")
    )
    publish(changed)
    wait(changed)
    assert all(
        "timeout connect 4s" in LabHost(h.name).run("cat /etc/haproxy/haproxy.cfg").stdout
        for h in lab.topology.with_role("haproxy")
    )


def test_a_hosts_etcd_credentials_read_its_own_prefix_only(lab: Lab) -> None:
    from toolkit.rollout.credentials import for_host

    in_container = LabHost("r1-proxy1").run("cat /etc/kgt/agent.secret").stdout
    assert f"password: {for_host(lab.topology, lab.secrets, 'r1-proxy1').password}\n" in in_container
    assert_need_to_know(lab.topology, lab.secrets, "r1-proxy1", ("r2-db1", "r1-db1"))


def test_without_etcds_majority_every_service_keeps_running_agents_say_stale_and_converge_after(
    lab: Lab, tmp_path: Path, restored: None
) -> None:
    members = [h for h in lab.topology.with_role("etcd")]
    stopped = members[1:]
    try:
        for h in stopped:
            lab.services(h.name).stop("etcd")
        t0 = time.monotonic()

        def stale() -> list[str]:
            status = "cat /var/lib/kgt/agent/status.json"
            return [h.name for h in lab.topology.hosts if '"stale_since": "' in LabHost(h.name).run(status).stdout]

        while len(stale()) < len(lab.topology.hosts) and time.monotonic() - t0 < 60:
            time.sleep(1)
        assert sorted(stale()) == sorted(h.name for h in lab.topology.hosts)
        time.sleep(max(0.0, 30 - (time.monotonic() - t0)))  # 30 s without a majority at least
        for h in lab.topology.hosts:
            m = lab.services(h.name)
            for name in (s for role in h.roles for s in ROLE_SERVICES.get(role, ()) if s != "etcd"):
                assert m.running(name), f"{h.name}: {name} stopped while etcd had no majority"
    finally:
        for h in stopped:
            lab.services(h.name).start("etcd")
        for h in stopped:
            lab.services(h.name).wait_healthy("etcd", SERVICES["etcd"].back or Gate(60))
    changed = example_variant(tmp_path, "defaults:\n", "defaults:\n  haproxy:\n    timeout_connect: 5s\n")
    publish(changed)
    wait(changed)
