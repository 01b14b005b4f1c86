"""The commands the lab runs in its containers, pinned: boot, drill heals and service faults.

`tests/data/lab_transcript.json` holds, scenario by scenario, every command run inside a
container (with its timeout and stdin), every other `docker` call, every URL asked and
every wait (timeout and pace) while booting a lab and while the drill backend stops and
starts its hosts and services, recorded from a fake lab (`fakelab.FakeLab`). The lab's
service interface must keep them exactly: the integration tests and the drills depend on
the order and the timing of these steps. Regenerate only for a deliberate change:
`KGT_WRITE_TRANSCRIPT=1 pytest tests/unit/test_lab_transcript.py`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from builders import ROOT, fake_secrets, make_topology
from fakelab import FakeLab, recording

import toolkit.drills.backend
import toolkit.lab.boot
from toolkit.drills.backend import LabBackend
from toolkit.lab import status
from toolkit.lab.boot import Booter, Progress
from toolkit.lab.state import LabState
from toolkit.topology.model import Topology

TRANSCRIPT = ROOT / "tests" / "data" / "lab_transcript.json"

# Every role the lab starts: dns on a proxy, two Galera nodes in r2, an arbitrator in r3.
LAYOUT = [
    ["galera+keystone+memcached", "haproxy+keepalived+dns", "haproxy+keepalived"],
    ["galera+keystone+memcached", "galera", "haproxy+keepalived", "haproxy+keepalived"],
    ["garbd", "galera+keystone", "haproxy+keepalived"],
]


def _topology(tmp_path: Path) -> Topology:
    return make_topology(tmp_path / "topology", regions=3, per_region=LAYOUT)


def _boot(lab: FakeLab, topology: Topology, state: LabState, out: dict[str, Any]) -> None:
    def echo(line: str) -> None:  # the step lines, without their times
        lab.records.append(["echo", re.sub(r"\[ *[\d.]+s\] | \([\d.]+s\)$", "", line)])

    booter = Booter(topology, fake_secrets(), state, Progress(echo))
    for step in (booter.galera, booter.health, booter.proxies, booter.memcached, booter.keystone, booter.dns):
        with recording(lab, out, f"boot.{step.__name__}"):
            step()


def _drills(lab: FakeLab, topology: Topology, out: dict[str, Any]) -> None:
    backend = LabBackend(topology)
    region = list(topology.region("r2").hosts)
    proxy, db = topology.host("r1-proxy1"), topology.host("r3-db1")
    with recording(lab, out, "backend.region-loss"):
        backend.stop_hosts(region)
        out["backend.region-loss.steps"] = sorted(backend.start_hosts(region, lambda line: None))
    with recording(lab, out, "backend.proxy-loss"):
        for service in ("keepalived", "haproxy"):
            backend.stop_service(proxy, service, kill=True)
        for service in ("haproxy", "keepalived"):
            backend.start_service(proxy, service)
        backend.stop_service(proxy, "keepalived")
        backend.start_service(proxy, "keepalived")
    with recording(lab, out, "backend.keystone-loss"):
        backend.stop_service(topology.host("r1-db1"), "keystone")
        backend.start_service(topology.host("r1-db1"), "keystone")
    with recording(lab, out, "backend.node-loss"):
        backend.crash_node(db)
        rejoin = backend.restart_node(db)
        out["backend.node-loss.rejoin"] = {k: v for k, v in rejoin.items() if k != "seconds"}
        out["backend.node-loss.again"] = backend.restart_node(db)
    with recording(lab, out, "backend.observe"):
        out["backend.observe.vips"] = backend.vips_held(proxy)
        out["backend.observe.dirty"] = backend.dirty_reads(db)
    with recording(lab, out, "status"):
        out["status.rows"] = [
            [row.host, row.services, row.wsrep, list(row.vips), row.container]
            for row in (status.host_status(topology, host) for host in topology.hosts)
        ]


def _transcript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    topology = _topology(tmp_path)
    state = LabState(tmp_path / "lab")
    (state.rendered / "sql").mkdir(parents=True)
    (state.rendered / "sql" / "bootstrap.sql").write_text("CREATE DATABASE keystone;\n")
    assert toolkit.lab.boot and toolkit.drills.backend  # imported, so their waits are recorded
    lab = FakeLab(topology, root=tmp_path).install(monkeypatch)
    out: dict[str, Any] = {}
    _boot(lab, topology, state, out)
    _drills(lab, topology, out)
    return out


def test_boot_and_drills_run_the_pinned_commands_in_the_pinned_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = json.loads(json.dumps(_transcript(tmp_path, monkeypatch)))
    if os.environ.get("KGT_WRITE_TRANSCRIPT"):
        TRANSCRIPT.write_text(json.dumps(seen, indent=1) + "\n")
    pinned = json.loads(TRANSCRIPT.read_text())
    assert list(seen) == list(pinned)
    for scenario, records in pinned.items():
        assert seen[scenario] == records, scenario
