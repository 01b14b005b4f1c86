"""The drill's Galera workload runs on its own schema, kgt_drill, passed through Options (no monkeypatching)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from test_check_workload import FakeConnection, names

from toolkit.check import workload as verify
from toolkit.check.history import History
from toolkit.drills import workloads
from toolkit.topology import Topology

SECRETS = {"verify_password": "v", "admin_password": "a", "keystone_admin_password": "k"}


def test_drill_uses_its_own_schema_and_leaves_the_verify_defaults_alone(
    example: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []
    monkeypatch.setattr("toolkit.check.sessions.connect", lambda *_args, **_session: FakeConnection(log))
    drill = workloads.Workloads(example, SECRETS, History(), workloads.WorkloadSettings())
    assert drill.options.schema == workloads.DRILL_SCHEMA == "kgt_drill"
    drill.prepare()
    assert names(log) == {"kgt_drill"}
    assert verify.SCHEMA == "kgt_verify" and verify.Options().schema == "kgt_verify"  # nothing was patched
    seen: list[Any] = []
    monkeypatch.setattr(verify, "final_reads", lambda _h, _t, _p, options, _a: seen.append(options))
    drill.finish(settle=False)  # an interrupted drill reads the final state at once — of its own schema
    assert [(o.schema, o.settle) for o in seen] == [("kgt_drill", 3.0)]


def test_dirty_reader_reads_its_schema() -> None:
    log: list[str] = []
    endpoint = workloads.ServiceEndpoint("r1", "r1-vip", "127.0.0.1", 3307)
    reader = workloads.DirtyReader(endpoint, "v", History(), threading.Event(), 1.0, 0.1, "kgt_drill")
    reader.conn = FakeConnection(log)
    assert reader.once()
    assert log == ["SELECT name, value FROM kgt_drill.counters"]
