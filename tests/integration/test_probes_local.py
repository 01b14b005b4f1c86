"""`kgt probe galera` and `kgt probe cluster` against a real loopback Galera cluster.

Three regions of one node each (tests/support/loopback_galera.py), booted from the
rendered configs. Each probe runs as a subprocess, as a monitoring server runs it. r3 is
cut off with iptables and always healed again.

The cluster is this module's own, on prefix 127.4 (127.4.1.11, 127.4.2.11, 127.4.3.11;
KGT_PROBES_LOOPBACK_PREFIX overrides): a session fixture imported into two test modules
would be two fixture definitions booting on the same addresses, and the isolation done
here must not surprise another module's tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.loopback_galera import LoopbackCluster, running, skip_reason

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STATUS = re.compile(
    r"^KGT (?P<probe>[A-Z-]+) (?P<state>OK|WARNING|CRITICAL|UNKNOWN)"
    r"(?: - (?P<text>[^|\n]*?))?(?: \| (?P<perf>[^|\n]*))?$"
)
PERF = re.compile(
    r"^(?:'[^'=]+'|[^'=\s]+)=-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:s|ms|us|%|B|KB|MB|TB|c)?"
    r"(?:;[^;\s]*){0,4}$"
)
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def probe(*args: str, timeout: float = 60) -> dict[str, Any]:
    """Run `kgt probe ARGS`; check the plugin format; return state, text, perfdata values."""
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "probe", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=timeout,
        check=False,
    )
    first = done.stdout.split("\n", 1)[0]
    match = STATUS.match(first)
    assert match, f"not a plugin line: {done.stdout!r} {done.stderr!r}"
    assert done.returncode == EXIT[match["state"]], done.stdout
    perf = {}
    for item in (match["perf"] or "").split():
        assert PERF.match(item), item
        label, _, rest = item.partition("=")
        perf[label.strip("'")] = float(re.match(r"-?[\d.eE+-]+", rest).group(0))  # type: ignore[union-attr]
    return {"state": match["state"], "text": match["text"] or "", "perf": perf, "line": first}


@pytest.fixture(scope="module")
def loopback_cluster() -> Iterator[LoopbackCluster]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    # Not pytest's tmp_path: mariadbd runs as mysql and must traverse the work directory.
    # About 400 MB of data directories: removed afterwards unless KGT_KEEP_LOOPBACK=1.
    workdir = Path(tempfile.mkdtemp(prefix="kgt-probes-loopback-"))
    cluster = LoopbackCluster(workdir, prefix=os.environ.get("KGT_PROBES_LOOPBACK_PREFIX", "127.4"), name="kgt-probes")
    try:
        with running(cluster):
            yield cluster
    finally:
        if not os.environ.get("KGT_KEEP_LOOPBACK"):
            shutil.rmtree(workdir, ignore_errors=True)


def topo(cluster: LoopbackCluster) -> list[str]:
    return [str(cluster.topology_path)]


def test_galera_every_node_ok(loopback_cluster: LoopbackCluster) -> None:
    loopback_cluster.wait_all_synced(timeout=120)
    for name in loopback_cluster.nodes:
        out = probe("galera", *topo(loopback_cluster), "--node", name)
        assert out["state"] == "OK", out["line"]
        assert out["text"].startswith(f"{name} Primary, Synced, ready, connected; cluster size 3")
        assert out["perf"]["cluster_size"] == 3
        assert out["perf"]["local_state"] == 4
        assert {"flow_control_paused", "recv_queue", "send_queue", "repl_latency", "cert_failures"} <= set(out["perf"])


def test_galera_plain_arguments(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    secret = loopback_cluster.secrets()["health_password"]
    (tmp_path / "pw").write_text(secret + "\n")
    node = loopback_cluster.nodes["r2-db1"]
    out = probe(
        "galera",
        "-H",
        node.address,
        "-P",
        str(node.port),
        "--password-file",
        str(tmp_path / "pw"),
        "-w",
        "3:",
        "-c",
        "2:",
    )
    assert out["state"] == "OK", out["line"]
    assert out["text"].startswith(f"{node.address} Primary, Synced")


def test_galera_wrong_credentials_are_unknown(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("wrong\n")
    out = probe("galera", *topo(loopback_cluster), "--node", "r1-db1", "--password-file", str(tmp_path / "pw"))
    assert out["state"] == "UNKNOWN"
    assert "credentials of kgt_health rejected" in out["text"]


def test_cluster_ok(loopback_cluster: LoopbackCluster) -> None:
    loopback_cluster.wait_all_synced(timeout=120)
    out = probe("cluster", *topo(loopback_cluster))
    assert out["state"] == "OK", out["line"]
    assert out["text"].startswith("3/3 nodes Primary and Synced in 3 regions, weight 3/3")
    assert out["perf"]["missing"] == 0
    assert out["perf"]["primary_weight"] == 3
    assert out["perf"]["regions_primary"] == 3


def test_cluster_wrong_credentials_are_unknown(loopback_cluster: LoopbackCluster, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("wrong\n")
    out = probe("cluster", *topo(loopback_cluster), "--password-file", str(tmp_path / "pw"))
    assert out["state"] == "UNKNOWN"
    assert "access-denied" in out["text"]


def test_r3_isolated(loopback_cluster: LoopbackCluster) -> None:
    cluster = loopback_cluster
    cluster.wait_all_synced(timeout=120)
    try:
        cluster.isolate("r3")
        cluster.wait_for("r3-db1 non-Primary", lambda: cluster.cluster_status("r3-db1") == "non-Primary", 120)
        cluster.wait_for("r1-db1 sees 2 nodes", lambda: cluster.status("r1-db1").get("wsrep_cluster_size") == "2", 120)

        r3 = probe("galera", *topo(cluster), "--node", "r3-db1")
        assert r3["state"] == "CRITICAL", r3["line"]
        assert r3["text"].startswith("r3-db1 is non-Primary (wsrep_cluster_status), not Primary")

        r1 = probe("galera", *topo(cluster), "--node", "r1-db1")
        assert r1["state"] == "WARNING", r1["line"]  # Primary, but below the topology's 3 voters
        assert "cluster size 2 outside 3:" in r1["text"]

        default = probe("cluster", *topo(cluster))
        assert default["state"] == "WARNING", default["line"]
        assert default["text"].startswith("1 of 3 voters missing (r3: r3-db1 non-primary), outside 0")
        assert default["perf"]["missing"] == 1
        assert default["perf"]["missing_r3"] == 1
        assert default["perf"]["primary_weight"] == 2

        strict = probe("cluster", *topo(cluster), "-c", "0")
        assert strict["state"] == "CRITICAL", strict["line"]

        tolerant = probe("cluster", *topo(cluster), "-w", "1")
        assert tolerant["state"] == "OK", tolerant["line"]
        assert "1 of 3 voters missing" in tolerant["text"]
    finally:
        cluster.heal()
        cluster.wait_all_synced(timeout=180)

    healed = probe("cluster", *topo(cluster))
    assert healed["state"] == "OK", healed["line"]
