"""Real-packet test of the WAN router (toolkit/lab/wanrouter/) in network namespaces.

Topology (all inside namespaces created here; the host's routing is only
touched by ``ip route replace blackhole 10.213.0.0/16 metric 4000``):

    ns BR: bridge br0 ── veth ── ns A  eth0 10.213.201.10/16 (region a)
                     ├── veth ── ns B  eth0 10.213.202.10/16 (region b)
                     └── veth ── ns R  eth0 10.213.200.254/16 (WAN router)

A routes 10.213.202.0/24 via R and B routes 10.213.201.0/24 via R, so
A<->B traffic crosses the userspace router, which runs as
``ip netns exec R python3 toolkit/lab/wanrouter run`` (the package folder, run as a program).  RTT is the
duration of a TCP connect() from A to a listener in B.

``NetnsLab`` is also used by benchmarks/wan_rtt.py.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WANROUTER = ROOT / "toolkit" / "lab" / "wanrouter"

A_IP = "10.213.201.10"
B_IP = "10.213.202.10"
R_IP = "10.213.200.254"
A_NET = "10.213.201.0/24"
B_NET = "10.213.202.0/24"
PORT = 7411

LISTENER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1024)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""

# argv: host port count timeout_s pause_s deadline_s
# Prints one JSON line per connect: {"t": monotonic start, "rtt": s or null}.
CLIENT = r"""
import json, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
count, timeout, pause = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
deadline = time.monotonic() + float(sys.argv[6])
for _ in range(count):
    if time.monotonic() > deadline:
        break
    s = socket.socket()
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.connect((host, port))
        rtt = time.monotonic() - t0
    except OSError:
        rtt = None
    finally:
        s.close()
    print(json.dumps({"t": t0, "rtt": rtt}), flush=True)
    if pause:
        time.sleep(pause)
"""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def netns_usable() -> str | None:
    """``None`` if the lab can run here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not installed"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun missing"
    probe = f"kgtw-probe-{os.getpid()}"
    if _run("ip", "netns", "add", probe, check=False).returncode != 0:
        return "'ip netns add' not permitted"
    try:
        ok = _run("ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up", check=False)
        if ok.returncode != 0:
            return "'ip netns exec' not usable"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


class NetnsLab:
    """Three hosts and a bridge namespace; owns every process it starts."""

    def __init__(self, workdir: Path, tag: str | None = None) -> None:
        tag = tag or str(os.getpid())
        self.ns = {k: f"kgtw-{tag}-{k}" for k in ("br", "a", "b", "r")}
        self.workdir = workdir
        self.config_path = workdir / "wan.json"
        self.stats_path = workdir / "wan.stats.json"
        self.router_log = workdir / "router.log"
        self.procs: list[subprocess.Popen[Any]] = []
        self.router: subprocess.Popen[Any] | None = None
        self.listener: subprocess.Popen[str] | None = None
        self._created: list[str] = []

    # -- build / destroy -------------------------------------------------

    def build(self) -> None:
        _run("ip", "route", "replace", "blackhole", "10.213.0.0/16", "metric", "4000")
        for name in self.ns.values():
            _run("ip", "netns", "add", name)
            self._created.append(name)
        br = self.ns["br"]
        _run("ip", "-n", br, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", br, "link", "set", "br0", "up")
        for key, addr in (("a", A_IP), ("b", B_IP), ("r", R_IP)):
            ns = self.ns[key]
            _run("ip", "-n", br, "link", "add", f"v{key}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "-n", br, "link", "set", f"v{key}", "master", "br0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "addr", "add", f"{addr}/16", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
        for key in ("a", "b"):
            for dev in ("all", "default", "eth0"):
                self.sysctl(key, f"net/ipv4/conf/{dev}/accept_redirects", "0")
        self.route_via_router(True)

    def sysctl(self, key: str, name: str, value: str) -> None:
        _run("ip", "netns", "exec", self.ns[key], "sh", "-c", f"echo {value} > /proc/sys/{name}")

    def route_via_router(self, on: bool) -> None:
        """Route A<->B via the router (on) or directly on the /16 (off)."""
        for key, net in (("a", B_NET), ("b", A_NET)):
            if on:
                _run("ip", "-n", self.ns[key], "route", "replace", net, "via", R_IP)
            else:
                _run("ip", "-n", self.ns[key], "route", "del", net, check=False)

    def destroy(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()
        for name in reversed(self._created):
            _run("ip", "netns", "del", name, check=False)
        self._created.clear()

    # -- processes ---------------------------------------------------------

    def _popen(self, key: str, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        proc: subprocess.Popen[Any] = subprocess.Popen(["ip", "netns", "exec", self.ns[key], *argv], **kw)
        self.procs.append(proc)
        return proc

    def write_config(self, rules: list[dict[str, Any]]) -> None:
        data = {"regions": {"a": A_NET, "b": B_NET}, "rules": rules, "seed": 7}
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.config_path)

    def log_text(self) -> str:
        try:
            return self.router_log.read_text()
        except OSError:
            return ""

    def start_router(self, rules: list[dict[str, Any]], timeout: float = 10.0) -> None:
        self.write_config(rules)
        log: IO[bytes] = open(self.router_log, "wb")  # noqa: SIM115 - lives with the proc
        self.router = self._popen(
            "r",
            [sys.executable, str(WANROUTER), "run", "--config", str(self.config_path), "--stats", str(self.stats_path)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while "running on" not in self.log_text():
            if self.router.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"router did not start:\n{self.log_text()}")
            time.sleep(0.05)

    def stop_router(self) -> int | None:
        if self.router is None:
            return None
        self.router.terminate()
        rc = self.router.wait(timeout=5)
        self.router = None
        return rc

    def set_rules(self, rules: list[dict[str, Any]], timeout: float = 3.0) -> float:
        """Rewrite the config and wait for the router's reload line."""
        before = self.log_text().count("reloaded ")
        t0 = time.monotonic()
        self.write_config(rules)
        while self.log_text().count("reloaded ") <= before:
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"router did not reload:\n{self.log_text()}")
            time.sleep(0.01)
        return time.monotonic() - t0

    def start_listener(self) -> None:
        self.listener = self._popen(
            "b", [sys.executable, "-c", LISTENER, B_IP, str(PORT)], stdout=subprocess.PIPE, text=True
        )
        assert self.listener.stdout is not None
        ready, _, _ = select.select([self.listener.stdout], [], [], 10)
        if not ready or self.listener.stdout.readline().strip() != "ready":
            raise RuntimeError("listener did not start")

    def connect_samples(
        self, count: int, timeout: float = 1.0, pause: float = 0.0, duration: float = 60.0
    ) -> list[tuple[float, float | None]]:
        """Run *count* connects from A to B; [(start, rtt or None), ...]."""
        proc = self._popen(
            "a",
            [sys.executable, "-c", CLIENT, B_IP, str(PORT), str(count), str(timeout), str(pause), str(duration)],
            stdout=subprocess.PIPE,
            text=True,
        )
        out, _ = proc.communicate(timeout=duration + timeout + 30)
        self.procs.remove(proc)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [(r["t"], r["rtt"]) for r in rows]

    def median_rtt_ms(self, count: int, timeout: float = 1.0) -> float:
        rtts = [rtt for _, rtt in self.connect_samples(count, timeout) if rtt is not None]
        assert rtts, "no connect succeeded"
        return statistics.median(rtts) * 1000.0

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.stats_path.read_text())
        return result


# ---------------------------------------------------------------------------

pytestmark = pytest.mark.integration

DELAY_25 = [{"between": None, "delay_ms": 25.0}]
DELAY_0 = [{"between": None, "delay_ms": 0.0}]
CUT = [{"between": ["a", "b"], "cut": True}]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    reason = netns_usable()
    if reason is not None:
        pytest.skip(reason)
    lab = NetnsLab(tmp_path_factory.mktemp("wanlab"))
    try:
        lab.build()
        lab.start_listener()
        lab.start_router(DELAY_25)
        yield lab
    finally:
        lab.destroy()


def test_delay_25ms_one_way_gives_50ms_rtt(lab: NetnsLab) -> None:
    lab.set_rules(DELAY_25)
    rtt = lab.median_rtt_ms(15)
    assert 45.0 <= rtt <= 55.0, rtt


def test_delay_0_is_fast_and_goes_through_router(lab: NetnsLab) -> None:
    lab.set_rules(DELAY_0)
    time.sleep(1.2)  # let the stats file refresh
    before = lab.stats()["passed"]
    rtt = lab.median_rtt_ms(20)
    assert rtt < 5.0, rtt
    time.sleep(1.2)
    assert lab.stats()["passed"] >= before + 40  # SYN + SYN-ACK per connect


def test_cut_blocks_and_restores(lab: NetnsLab) -> None:
    lab.set_rules(CUT)
    samples = lab.connect_samples(2, timeout=1.0)
    assert samples and all(rtt is None for _, rtt in samples), samples
    lab.set_rules(DELAY_0)
    assert lab.median_rtt_ms(5) < 5.0


def test_runtime_change_seen_within_1s(lab: NetnsLab) -> None:
    lab.set_rules(DELAY_0)
    # Stream connects from A while the file is rewritten.
    proc = lab._popen(
        "a",
        [sys.executable, "-c", CLIENT, B_IP, str(PORT), "1000", "1.0", "0.01", "3.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.8)  # python start-up + some fast samples
    changed_at = time.monotonic()
    lab.write_config(DELAY_25)
    out, _ = proc.communicate(timeout=20)
    lab.procs.remove(proc)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    slow = [r for r in rows if r["t"] >= changed_at and r["rtt"] and r["rtt"] > 0.040]
    assert slow, rows[-5:]
    assert slow[0]["t"] - changed_at < 1.0
    fast_before = [r for r in rows if r["t"] < changed_at and r["rtt"] is not None]
    assert fast_before and max(r["rtt"] for r in fast_before) < 0.010


def test_loss_drops_some_packets(lab: NetnsLab) -> None:
    # 100 % loss behaves like a cut; 0 % loss afterwards is clean again.
    lab.set_rules([{"between": None, "delay_ms": 0.0, "loss_pct": 100.0}])
    assert all(rtt is None for _, rtt in lab.connect_samples(1, timeout=0.5))
    lab.set_rules(DELAY_0)
    assert all(rtt is not None for _, rtt in lab.connect_samples(10))


def test_router_exits_cleanly_on_sigterm(lab: NetnsLab) -> None:
    assert lab.stop_router() == 0
    assert "stopped:" in lab.log_text()
    lab.start_router(DELAY_0)  # fail-closed in between; back for later tests
    assert lab.median_rtt_ms(3) < 5.0
