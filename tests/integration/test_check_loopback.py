"""`kgt check quorum | verify` as subprocesses against a real 3-region Galera cluster on loopback.

The cluster (tests/support/loopback_galera.py) is booted once per session from the
rendered configs; partitions are iptables rules between the regions' 127.0.N.0/24
subnets, healed in `finally` blocks and again by the fixture's teardown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.support` without relying on the runner's cwd
    sys.path.insert(0, str(ROOT))

from tests.support import loopback_galera  # noqa: E402
from tests.support.history import assert_no_ok_write_while_non_primary  # noqa: E402
from tests.support.loopback_galera import LoopbackCluster  # noqa: E402

loopback_cluster = loopback_galera.loopback_cluster  # the session fixture, under its own name

pytestmark = pytest.mark.integration


def kgt(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `python3 -m toolkit.cli check …`; return the process and its wall time."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done, time.monotonic() - started


def quorum_json(cluster: LoopbackCluster) -> tuple[int, dict[str, Any]]:
    done, _ = kgt("quorum", str(cluster.topology_path), "--format", "json", "--timeout", "3s")
    return done.returncode, json.loads(done.stdout)


def wait_quorum(
    cluster: LoopbackCluster, code: int, timeout: float = 30.0, read_only: str | None = None
) -> dict[str, Any]:
    """Poll `kgt check quorum` until it exits `code` (and region `read_only` is read-only)."""
    deadline = time.monotonic() + timeout
    while True:
        rc, data = quorum_json(cluster)
        done = rc == code and (
            read_only is None or {r["name"]: r["state"] for r in data["regions"]}.get(read_only) == "read-only"
        )
        if done or time.monotonic() > deadline:
            assert done, f"quorum exit {rc}, wanted {code}: {data['summary']}"
            return data
        time.sleep(0.5)


def test_quorum_ok(loopback_cluster: LoopbackCluster) -> None:
    done, seconds = kgt("quorum", str(loopback_cluster.topology_path))
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("OK: 3/3 nodes Primary and Synced in 3 regions")
    assert seconds < 10
    rc, data = quorum_json(loopback_cluster)
    assert rc == 0 and data["state"] == "OK" and data["metrics"]["cluster_size"] == 3
    assert [n["segment"] for n in data["nodes"]] == [1, 2, 3]  # the rendered gmcast.segment


def test_isolated_region_is_warning_then_heals(loopback_cluster: LoopbackCluster) -> None:
    cluster = loopback_cluster
    try:
        cut = time.monotonic()
        cluster.isolate("r3")
        # r1+r2 install their new view a moment before r3 notices; meanwhile the check says
        # "view change in progress" (also a WARNING), then r3 turns non-Primary.
        data = wait_quorum(cluster, 1, timeout=30, read_only="r3")
        detected = time.monotonic() - cut
        regions = {r["name"]: r["state"] for r in data["regions"]}
        assert regions == {"r1": "primary", "r2": "primary", "r3": "read-only"}, data["summary"]
        assert "r3" in data["summary"]
        nodes = {n["host"]: n["cluster_status"] for n in data["nodes"]}
        assert nodes == {"r1-db1": "Primary", "r2-db1": "Primary", "r3-db1": "non-Primary"}
        print(f"isolation detected by kgt check quorum after {detected:.1f}s")
    finally:
        cluster.heal()
    healed = time.monotonic()
    wait_quorum(cluster, 0, timeout=30)
    print(f"quorum OK again {time.monotonic() - healed:.1f}s after heal")


def test_verify_clean_run(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    done, seconds = kgt(
        "verify",
        str(loopback_cluster.topology_path),
        "--duration",
        "10s",
        "--through",
        "nodes",
        "--history",
        str(history),
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"] == "valid" and data["lost"] == 0 and data["anomalies"] == []
    assert data["acknowledged"] > 30 and data["final"]["checked"]
    for region in ("r1", "r2", "r3"):
        r = data["regions"][region]
        assert r["writes"]["ok"] > 10, r
        assert r["commit_latency"]["p50"] > 0 and r["commit_latency"]["p99"] >= r["commit_latency"]["p50"]
        assert r["commit_latency_rtt"]["p50"] > 0
        assert r["rtt"] is not None
        for writer in ("r1", "r2", "r3"):
            assert data["visibility"][f"{writer}->{region}"]["n"] > 0
    finals = {h: f["values"] for h, f in data["final"]["nodes"].items()}
    assert len(finals) == 3 and len({json.dumps(v, sort_keys=True) for v in finals.values()}) == 1
    lines = history.read_text().splitlines()
    assert len(lines) >= 2 * data["operations"]  # every completion has its invocation
    assert {json.loads(line)["type"] for line in lines} >= {"invoke", "ok"}
    assert seconds < 10 + 30


def test_verify_through_a_partition(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    cluster = loopback_cluster
    history = tmp_path / "history.jsonl"
    args = [
        sys.executable,
        "-m",
        "toolkit.cli",
        "check",
        "verify",
        str(cluster.topology_path),
        "--duration",
        "30s",
        "--through",
        "nodes",
        "--history",
        str(history),
        "--format",
        "json",
        "--settle",
        "20s",
    ]
    run = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        cluster.isolate("r3")
        cluster.wait_for("r3 non-Primary", lambda: cluster.cluster_status("r3-db1") == "non-Primary", 30)
        time.sleep(6)  # a few iterations while r3 is non-Primary
    finally:
        cluster.heal()
    out, err = run.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert run.returncode == 0, out + err
    data = json.loads(out)
    assert data["verdict"] == "valid", data["summary"]
    assert data["lost"] == 0 and not data["anomalies"]
    # r1 and r2 kept the Primary component: their acknowledged writes are all in the final state.
    assert data["regions"]["r1"]["writes"]["ok"] > 0 and data["regions"]["r2"]["writes"]["ok"] > 0
    r3 = data["regions"]["r3"]
    assert r3["writes"]["fail"] + r3["writes"]["info"] > 0
    assert r3["stale_reads"] > 0 and r3["max_staleness"] > 3.0, r3
    assert "non-primary" in r3["errors"], r3["errors"]
    assert_no_ok_write_while_non_primary(history, "r3")
    cluster.wait_all_synced(60)


def unreachable_topology(tmp_path: Path) -> Path:
    path = tmp_path / "unreachable.yaml"
    path.write_text(
        "name: kgt-gone\ndomain: kgt.test\nsecrets: {file: s.yaml, create: true}\nregions:\n"
        "  - name: r9\n    subnet: 127.0.9.0/24\n"
        "    hosts: [{name: r9-db1, address: 127.0.9.9, roles: [galera]}]\n"
    )
    from toolkit import secretstore
    from toolkit.topology import load

    secretstore.for_topology(load(path))  # create the secrets file
    return path


def test_unreachable_host_is_critical_in_one_line(tmp_path: Path) -> None:
    topology = unreachable_topology(tmp_path)
    done, seconds = kgt("quorum", str(topology), "--timeout", "3s")
    assert done.returncode == 2 and seconds < 8
    assert done.stdout.strip().splitlines()[-1].startswith("CRITICAL: no node answered (r9-db1 unreachable)")
    done, seconds = kgt("verify", str(topology), "--duration", "5s", "--timeout", "3s")
    assert done.returncode == 2 and seconds < 8
    assert done.stderr.strip().count("\n") == 0
    assert "CRITICAL: cannot create schema kgt_verify" in done.stderr and "unreachable" in done.stderr


def test_blackholed_host_times_out_within_the_deadline(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    topology = unreachable_topology(tmp_path)
    try:
        loopback_cluster.blackhole("127.0.9.9")
        done, seconds = kgt("quorum", str(topology), "--timeout", "3s")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "timeout" in done.stdout.strip().splitlines()[-1]
        assert seconds < 8
        done, seconds = kgt("verify", str(topology), "--duration", "5s", "--timeout", "3s")
        assert done.returncode == 2 and "timeout" in done.stderr and seconds < 10
    finally:
        loopback_cluster.heal()


def test_wrong_credentials_are_unknown_in_one_line(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "".join(
            f"{name}: not-the-password\n"
            for name in ("admin_password", "sst_password", "health_password", "verify_password")
        )
    )
    wrong.chmod(0o600)
    topology = str(loopback_cluster.topology_path)
    done, seconds = kgt("quorum", topology, "--secrets", str(wrong))
    assert done.returncode == 3 and seconds < 8
    assert done.stdout.strip().splitlines()[-1].startswith("UNKNOWN: no node answered (r1-db1 access-denied")
    done, seconds = kgt("verify", topology, "--secrets", str(wrong), "--duration", "5s")
    assert done.returncode == 3 and seconds < 8
    assert done.stderr.strip().count("\n") == 0 and "access-denied" in done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("health_password: [unclosed\n")
    done, _ = kgt("quorum", topology, "--secrets", str(broken))
    assert done.returncode == 3 and "invalid YAML in secrets file" in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_verify_cleanup_drops_schema_and_user(loopback_cluster: LoopbackCluster) -> None:
    topology = str(loopback_cluster.topology_path)
    done, _ = kgt("verify", topology, "--iterations", "3", "--through", "nodes", "--cleanup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dropped schema kgt_verify, dropped user kgt_verify" in done.stdout
    assert loopback_cluster.sql("r2-db1", "SHOW DATABASES LIKE 'kgt_verify';").strip() == ""
    assert loopback_cluster.sql("r3-db1", "SELECT COUNT(*) FROM mysql.user WHERE user = 'kgt_verify';").strip() == "0"
    done, _ = kgt("verify", topology, "--iterations", "0", "--through", "nodes", "--cleanup")
    assert done.returncode == 0 and "dropped schema kgt_verify" in done.stdout


def test_verify_cleanup_keeps_the_user_another_schema_still_uses(loopback_cluster: LoopbackCluster) -> None:
    # A drill (kgt_drill) running beside an operator's `verify --cleanup` must keep its user.
    topology = str(loopback_cluster.topology_path)
    users = "SELECT COUNT(*) FROM mysql.user WHERE user = 'kgt_verify';"
    try:
        done, _ = kgt("verify", topology, "--iterations", "1", "--through", "nodes", "--schema", "kgt_other")
        assert done.returncode == 0, done.stdout + done.stderr
        done, _ = kgt("verify", topology, "--iterations", "2", "--through", "nodes", "--cleanup")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "dropped schema kgt_verify, kept user kgt_verify (still granted on kgt_other)" in done.stdout
        assert loopback_cluster.sql("r2-db1", users).strip() == "1"
        # The user is made for the topology's monitoring network (toolkit.accounts), no '%'.
        grants = loopback_cluster.sql("r3-db1", "SHOW GRANTS FOR 'kgt_verify'@'127.0.0.0/255.0.0.0';")
        assert "ON `kgt_other`.*" in grants and "ON `kgt_verify`.*" not in grants, grants
    finally:
        done, _ = kgt(
            "verify", topology, "--iterations", "0", "--through", "nodes", "--schema", "kgt_other", "--cleanup"
        )
    assert done.returncode == 0 and "dropped user kgt_verify" in done.stdout, done.stdout + done.stderr
    assert loopback_cluster.sql("r1-db1", users).strip() == "0"


def test_verify_lockstep_runs_the_seed_loop_without_racing_itself(
    loopback_cluster: LoopbackCluster, tmp_path: Path
) -> None:
    topology = str(loopback_cluster.topology_path)
    history = tmp_path / "lockstep.jsonl"
    iterations = 20  # enough that a stale locking read (sync_wait=0) loses a race in most runs
    done, _ = kgt(
        "verify",
        topology,
        "--mode",
        "lockstep",
        "--iterations",
        str(iterations),
        "--through",
        "nodes",
        "--schema",
        "kgt_lockstep",
        "--history",
        str(history),
        "--format",
        "json",
        "--cleanup",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert (data["mode"], data["verdict"], data["lost"]) == ("lockstep", "valid", 0)
    for region, stats in data["regions"].items():
        # One write at a time: no certification race to lose, so every increment is acknowledged.
        assert stats["writes"]["ok"] == iterations and stats["certification_conflicts"] == 0, (region, stats)
        assert stats["commit_latency"]["n"] == iterations
    ops = [json.loads(line) for line in history.read_text().splitlines()]
    loop = [o for o in ops if o["process"] in data["regions"]]
    assert all(
        a["type"] == "invoke" and b["index"] == a["index"] + 1 for a, b in zip(loop[0::2], loop[1::2], strict=True)
    )
