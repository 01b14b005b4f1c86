"""`kgt check quorum | verify` against the live lab: healthy, one region cut off, and over a 50 ms WAN."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, Lab
from tests.support.history import assert_no_ok_write_while_non_primary
from tests.support.topologies import replace_tls
from toolkit import accounts
from toolkit.lab import network

pytestmark = pytest.mark.integration


def quorum(lab: Lab) -> tuple[int, dict[str, Any]]:
    done = lab.kgt("check", "quorum", str(lab.topology_path), "--format", "json", "--timeout", "3s")
    return done.returncode, json.loads(done.stdout)


def wait_quorum(lab: Lab, code: int, timeout: float, read_only: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rc, data = quorum(lab)
        regions = {r["name"]: r["state"] for r in data["regions"]}
        if rc == code and (read_only is None or regions.get(read_only) == "read-only"):
            return data
        assert time.monotonic() < deadline, f"quorum exit {rc}, wanted {code}: {data['summary']}"
        time.sleep(0.5)


def test_quorum_ok_on_healthy_lab(lab: Lab) -> None:
    done = lab.kgt("check", "quorum", str(lab.topology_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("OK: 3/3 nodes Primary and Synced in 3 regions")


def test_quorum_sees_r3_galera_host_isolated_then_healed(lab: Lab) -> None:
    topology = lab.topology
    try:
        network.cut(topology, "r3", only=["r3-db1"])  # iptables inside r3-db1's container only
        data = wait_quorum(lab, 1, 30, read_only="r3")
        assert {r["name"]: r["state"] for r in data["regions"]} == {"r1": "primary", "r2": "primary", "r3": "read-only"}
        nodes = {n["host"]: n["cluster_status"] for n in data["nodes"]}
        assert nodes == {"r1-db1": "Primary", "r2-db1": "Primary", "r3-db1": "non-Primary"}
    finally:
        network.heal(topology)
    healed = time.monotonic()
    wait_quorum(lab, 0, 30)
    assert time.monotonic() - healed <= 30


def verify(lab: Lab, *args: str, timeout: float = 300) -> dict[str, Any]:
    done = lab.kgt("check", "verify", str(lab.topology_path), "--format", "json", *args, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def run_sql(lab: Lab, statements: list[str]) -> None:
    """As kgt_admin from the lab's host, straight to the first node."""
    conn = lab.connect(str(lab.topology.galera_nodes[0].address))
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def test_verify_healthy_lab_through_the_vips(lab: Lab, tmp_path: Path) -> None:
    data = verify(lab, "--duration", "20s", "--through", "vip", "--history", str(tmp_path / "h.jsonl"))
    assert data["verdict"] == "valid" and data["lost"] == 0 and not data["anomalies"]
    for region in ("r1", "r2", "r3"):
        r = data["regions"][region]
        assert r["writes"]["ok"] > 5, r
        assert r["commit_latency"]["p50"] > 0
        for writer in ("r1", "r2", "r3"):
            assert data["visibility"][f"{writer}->{region}"]["n"] > 0


CLIENT = "r1-db1"  # a client inside region r1: its RTT to the other regions crosses the WAN


def client_topology(lab: Lab, address: str) -> str:
    """The lab's topology as a client inside a region uses it: the site CA beside it, and that
    client named a monitoring and admin host (what an operator writes for a host that runs kgt)."""
    text = replace_tls(lab.topology_path.read_text(), "tls: {ca: kgt-ca.crt, certs: kgt-certs}\n")
    text = text.replace("monitoring: [10.213.0.1]", f"monitoring: [10.213.0.1, {address}]")
    return text.replace("admin_networks: [10.213.0.0/24]", f"admin_networks: [10.213.0.0/24, {address}/32]")


def test_verify_over_a_50ms_wan_commits_no_faster_than_the_rtt(lab: Lab, tmp_path: Path) -> None:
    """Run from inside r1 (a client in a region) so the measured RTT crosses the WAN."""
    topology = lab.topology
    client = lab.host(CLIENT)
    address = str(topology.host(CLIENT).address)
    staged = tmp_path / "client"
    staged.mkdir()
    (staged / "topology.yaml").write_text(client_topology(lab, address))
    shutil.copy(topology.client_ca, staged / "kgt-ca.crt")
    shutil.copy(topology.secrets_file, staged / "secrets.yaml")
    assert subprocess.run(["docker", "cp", str(staged), f"{CLIENT}:/tmp/kgt-client"], check=False).returncode == 0
    # The accounts as a bootstrap from that topology makes them for the new admin host
    # (kgt_verify's are made by the run itself, through kgt_admin).
    admin = accounts.Account(accounts.ADMIN_USER, (address,), "admin_password", "ALL PRIVILEGES ON *.*", True, True)
    run_sql(lab, admin.statements(lab.secrets["admin_password"]))
    assert lab.kgt("lab", "wan", "--rtt", "50ms").returncode == 0
    try:
        # Every region's increment also locks the shared row: over a WAN the nearest client
        # wins every race at full speed, so pace the loop to let each region commit.
        done = client.run(
            "kgt check verify /tmp/kgt-client/topology.yaml --secrets /tmp/kgt-client/secrets.yaml "
            "--duration 20s --interval 1s --through vip --format json",
            timeout=240,
        )
    finally:
        assert lab.kgt("lab", "wan", "--clear").returncode == 0
        client.run("rm -rf /tmp/kgt-client")
        run_sql(lab, [f"DROP USER IF EXISTS '{accounts.ADMIN_USER}'@'{address}'"])
    assert done.rc == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert data["lost"] == 0
    reference = data["rtt"]["reference"]
    assert 0.045 <= reference <= 0.060, data["rtt"]
    for region in ("r1", "r2", "r3"):
        r = data["regions"][region]
        assert r["writes"]["ok"] > 0, (region, r["writes"], r["errors"])
        assert r["commit_latency"]["p50"] >= 0.050, (region, r["commit_latency"])  # physics
        assert r["commit_latency_rtt"]["p50"] >= 1.0, (region, r["commit_latency_rtt"])


def test_verify_while_r3_is_isolated_for_part_of_the_window(lab: Lab, tmp_path: Path) -> None:
    topology = lab.topology
    history = tmp_path / "history.jsonl"
    args = [
        sys.executable,
        "-m",
        "toolkit.cli",
        "check",
        "verify",
        str(lab.topology_path),
        "--duration",
        "35s",
        "--through",
        "vip",
        "--history",
        str(history),
        "--format",
        "json",
        "--settle",
        "30s",
    ]
    run = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)
        network.cut(topology, "r3")
        wait_quorum(lab, 1, 30, read_only="r3")
        time.sleep(8)  # iterations while r3 is non-Primary
    finally:
        network.heal(topology)
    out, err = run.communicate(timeout=240)
    assert "Traceback" not in err, err
    assert run.returncode == 0, out + err
    data = json.loads(out)
    assert data["verdict"] == "valid" and data["lost"] == 0 and not data["anomalies"], data["summary"]
    assert data["regions"]["r1"]["writes"]["ok"] > 0 and data["regions"]["r2"]["writes"]["ok"] > 0
    r3 = data["regions"]["r3"]
    assert r3["writes"]["fail"] + r3["writes"]["info"] > 0
    assert r3["stale_reads"] > 0 and r3["max_staleness"] > 3.0, r3
    assert_no_ok_write_while_non_primary(history, "r3")
    wait_quorum(lab, 0, 60)
