"""Real packets against a rendered firewall: the example's r1-db1 kgt.nft loaded in a network namespace.

Two namespaces joined by one veth pair, nothing else (the host's own network is not touched):

    ns H  eth0 10.213.1.11/16               r1-db1, its kgt.nft loaded, listeners on 22, 3306, 4567, 11211
    ns C  eth0 10.213.2.11/16  (r2-db1: a Galera peer, and another region's Keystone)
               10.213.1.21/16  (r1-proxy1: a proxy)
               10.213.0.1/16   (the example's admin and monitoring host)
               10.213.1.50/16  (anyone else in a region subnet)

A client in C binds one of its addresses and connects: accepted connects, a dropped SYN
times out. Both namespaces are deleted in a `finally`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_wanrouter_netns import netns_usable

ROOT = Path(__file__).resolve().parents[2]
HOST = "10.213.1.11"
PEER, PROXY, ADMIN, STRANGER = "10.213.2.11", "10.213.1.21", "10.213.0.1", "10.213.1.50"
PORTS = (22, 3306, 4567, 11211)

LISTENER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(port)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        key.fileobj.accept()[0].close()
"""

CONNECT = r"""
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[4]))
s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    print("open")
except OSError as exc:
    print("refused" if isinstance(exc, ConnectionRefusedError) else "dropped")
"""

pytestmark = pytest.mark.integration


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


class Pair:
    """The host namespace H with the firewall and the client namespace C."""

    def __init__(self) -> None:
        tag = os.getpid()
        self.h, self.c = f"kgtf-{tag}-h", f"kgtf-{tag}-c"
        self.listener: subprocess.Popen[str] | None = None
        self.ruleset = Path()

    def build(self, ruleset: Path) -> None:
        self.ruleset = ruleset
        for ns in (self.h, self.c):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.h, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", self.c)
        run("ip", "-n", self.h, "addr", "add", f"{HOST}/16", "dev", "eth0")
        for address in (PEER, PROXY, ADMIN, STRANGER):
            run("ip", "-n", self.c, "addr", "add", f"{address}/16", "dev", "eth0", "nodad")
        for ns in (self.h, self.c):
            run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "netns", "exec", self.h, "nft", "-f", str(ruleset))
        self.listener = subprocess.Popen(
            ["ip", "netns", "exec", self.h, sys.executable, "-c", LISTENER, HOST, *map(str, PORTS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.listener.stdout is not None and self.listener.stdout.readline().strip() == "ready"

    def destroy(self) -> None:
        if self.listener is not None and self.listener.poll() is None:
            self.listener.kill()
            self.listener.wait(timeout=5)
        for ns in (self.c, self.h):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def connect(self, source: str, port: int, timeout: float = 1.0) -> str:
        """`open`, `refused` or `dropped`: what a TCP connect from `source` to the host's `port` meets."""
        argv = ["ip", "netns", "exec", self.c, sys.executable, "-c", CONNECT, source, HOST, str(port), str(timeout)]
        return run(*argv).stdout.strip()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    reason = netns_usable()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("fw") / "out"
    kgt = [sys.executable, "-m", "toolkit.cli", "render", str(ROOT / "topology" / "example.yaml"), "-o", str(out)]
    subprocess.run([*kgt, "--secrets", str(ROOT / "tests" / "data" / "example.secrets.yaml")], check=True, cwd=ROOT)
    p = Pair()
    try:
        p.build(out / "r1-db1" / "etc" / "nftables.d" / "kgt.nft")
        yield p
    finally:
        p.destroy()


def test_a_galera_peer_reaches_gcomm_and_a_proxy_does_not(pair: Pair) -> None:
    assert pair.connect(PEER, 4567) == "open"
    assert pair.connect(PROXY, 4567) == "dropped"


def test_a_proxy_and_monitoring_reach_mariadb_and_nobody_else(pair: Pair) -> None:
    assert pair.connect(PROXY, 3306) == "open"
    assert pair.connect(ADMIN, 3306) == "open"
    assert pair.connect(STRANGER, 3306) == "dropped"


def test_another_regions_keystone_does_not_reach_memcached(pair: Pair) -> None:
    assert pair.connect(PEER, 11211) == "dropped"  # r2-db1 is r2's Keystone


def test_the_operators_ssh_port_stays_reachable_from_the_admin_network(pair: Pair) -> None:
    assert pair.connect(ADMIN, 22) == "open"
    assert pair.connect(STRANGER, 22) == "dropped"  # the example names admin_networks: [10.213.0.0/24]


def test_loading_the_file_again_replaces_the_table_in_place(pair: Pair) -> None:
    def listed() -> str:
        return run("ip", "netns", "exec", pair.h, "nft", "list", "ruleset").stdout

    before = listed()
    assert "policy drop" in before and 'comment "galera peers: gcomm over UDP"' in before
    run("ip", "netns", "exec", pair.h, "nft", "-f", str(pair.ruleset))
    assert listed() == before
    assert before.count("table inet kgt") == 1
    assert pair.connect(PEER, 4567) == "open"
