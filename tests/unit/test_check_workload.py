"""The verify workload's SQL names the schema of its Options (fake connections that record statements)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from toolkit.check import counters, sessions, workload
from toolkit.check.history import History
from toolkit.errors import CannotCheck
from toolkit.topology import Topology

STATUS = [
    ("wsrep_cluster_status", "Primary"),
    ("wsrep_cluster_size", "3"),
    ("wsrep_cluster_conf_id", "7"),
    ("wsrep_local_state_comment", "Synced"),
]


class FakeCursor:
    """Records every statement; answers status queries and counter selects like a healthy node."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, args: tuple[Any, ...] | None = None) -> None:
        self.log.append(sql)
        if sql.startswith("SHOW GLOBAL STATUS"):
            self.rows = list(STATUS)
        elif sql.startswith("SELECT @@wsrep_node_name"):
            self.rows = [("r1-db1",)]
        elif sql.startswith("SELECT name, value, @@wsrep_node_name FROM") and args:
            self.rows = [(name, 0, "r1-db1") for name in args]
        elif sql.startswith("SELECT name, value FROM") and args:
            self.rows = [(name, 0) for name in args]
        elif sql.startswith("SELECT name, value FROM"):
            self.rows = [("r1", 0), ("shared", 0)]
        else:
            self.rows = []

    def executemany(self, sql: str, seq: list[tuple[Any, ...]]) -> None:
        self.log.append(sql)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


class FakeConnection:
    """Enough of a pymysql connection for the workload."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @contextmanager
    def cursor(self) -> Iterator[FakeCursor]:
        yield FakeCursor(self.log)

    def begin(self) -> None:
        self.log.append("BEGIN")

    def commit(self) -> None:
        self.log.append("COMMIT")

    def close(self) -> None:
        pass


def names(statements: list[str]) -> set[str]:
    """Every schema a statement names: `X.counters`, `ON X.*`, `DATABASE … X`."""
    found: set[str] = set()
    for sql in statements:
        found.update(re.findall(r"\b(\w+)\.(?:counters|\*)", sql))
        found.update(re.findall(r"DATABASE (?:IF (?:NOT )?EXISTS )?(\w+)", sql))
    return found


def run_everything(topology: Topology, options: workload.Options, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Setup, initial read, one worker iteration, final reads and cleanup; return every statement sent."""
    log: list[str] = []
    monkeypatch.setattr("toolkit.check.sessions.connect", lambda *_args, **_session: FakeConnection(log))
    work = sessions.targets(topology, "nodes")
    counters.setup(topology, work, "admin", "verify", 1.0, schema=options.schema)
    history = History()
    workload.initial_read(history, work, "verify", 1.0, schema=options.schema)
    worker = workload.Worker(work[0], "verify", history, workload.Acked(), options, threading.Event())
    worker.incr()
    worker.read_and_verify()
    workload.final_reads(history, topology, "verify", options, threading.Event())
    counters.cleanup(topology, work, "admin", 1.0, schema=options.schema)
    assert not [op for op in history.ops if op.type != "invoke" and op.type != "ok"], history.ops
    return log


def test_each_options_schema_names_its_own_table(example: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    # visible_within=0: the fake never shows the increment, so one read, no re-reads.
    for options, schema in (
        (workload.Options(visible_within=0.0), "kgt_verify"),
        (workload.Options(visible_within=0.0, schema="kgt_drill"), "kgt_drill"),
    ):
        assert options.schema == schema and options.table == f"{schema}.counters"
        log = run_everything(example, options, monkeypatch)
        assert names(log) == {schema}, log
        table = f"{schema}.counters"
        assert f"CREATE DATABASE IF NOT EXISTS {schema}" in log
        sources = [*(str(h.address) for h in example.with_role("haproxy")), "10.213.0.1"]  # proxies, monitoring
        for source in sources:
            assert f"GRANT SELECT, INSERT, UPDATE ON {schema}.* TO 'kgt_verify'@'{source}'" in log
        assert not [s for s in log if "'%'" in s]
        assert f"DROP DATABASE IF EXISTS {schema}" in log
        assert any(
            s.startswith(f"SELECT name, value, @@wsrep_node_name FROM {table} WHERE") and "FOR UPDATE" in s for s in log
        )
        assert any(s.startswith(f"UPDATE {table} SET") for s in log)
        reads = [s for s in log if s == f"SELECT name, value FROM {table}"]
        assert len(reads) >= 1 + 1 + len(example.galera_nodes)  # initial, the worker's, one final per node


def test_increment_and_status_record_the_node_that_served_them(
    example: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through a VIP the serving node may be another region's: the history must say which.
    log: list[str] = []
    monkeypatch.setattr("toolkit.check.sessions.connect", lambda *_args, **_session: FakeConnection(log))
    history = History()
    worker = workload.Worker(
        sessions.targets(example, "nodes")[0],
        "verify",
        history,
        workload.Acked(),
        workload.Options(visible_within=0.0),
        threading.Event(),
    )
    worker.status()
    worker.incr()
    done = {op.f: op.value for op in history.ops if op.type == "ok"}
    assert done["incr"] == {"r1": 1, "shared": 1, "node": "r1-db1"}
    assert done["status"]["node"] == "r1-db1" and done["status"]["status"] == "Primary"
    # The node comes from the locking read itself: no extra round trip in the transaction.
    transaction = log[log.index("BEGIN") : log.index("COMMIT")]
    assert not [s for s in transaction if s.startswith("SELECT @@")], transaction


def test_read_counters_defaults_to_kgt_verify() -> None:
    log: list[str] = []
    assert counters.read_counters(FakeConnection(log)) == {"r1": 0, "shared": 0}
    assert counters.read_counters(FakeConnection(log), schema="other") == {"r1": 0, "shared": 0}
    assert log == ["SELECT name, value FROM kgt_verify.counters", "SELECT name, value FROM other.counters"]


@pytest.mark.parametrize(
    "bad",
    ["", "KGT", "1kgt", "kgt-verify", "kgt.verify", "kgt_verify; DROP DATABASE mysql", "`kgt`", "a" * 65, "kgt verify"],
)
def test_bad_schema_name_is_one_unknown_line(bad: str) -> None:
    with pytest.raises(CannotCheck) as caught:
        workload.Options(schema=bad)
    message = str(caught.value)
    assert message.startswith("UNKNOWN: bad schema name") and "\n" not in message
    log: list[str] = []
    with pytest.raises(CannotCheck):
        counters.read_counters(FakeConnection(log), schema=bad)
    assert log == []  # refused before anything was sent


def test_good_schema_names() -> None:
    for good in ("kgt_verify", "kgt_drill", "_x", "a" * 64, "v2"):
        assert workload.Options(schema=good).table == f"{good}.counters"


def test_cli_refuses_a_bad_schema_before_connecting(kgt: Any, tmp_path: Any) -> None:
    # The topology does not even exist: the schema is checked first, and nothing connects.
    result = kgt("check", "verify", tmp_path / "missing.yaml", "--schema", "kgt-verify")
    assert result.code == 3
    assert result.err.strip() == (
        "kgt: UNKNOWN: bad schema name 'kgt-verify': want a plain SQL identifier "
        "(a-z, 0-9 and _, not starting with a digit, at most 64 characters)"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "quorum"),  # missing TOPOLOGY
        ("check", "verify", "t.yaml", "--duration", "abc"),
        ("check", "verify", "t.yaml", "--through", "somewhere"),
        ("check", "quorum", "t.yaml", "--format", "xml"),
        ("check", "nonsense"),
    ],
)
def test_check_usage_errors_are_unknown_not_critical(kgt: Any, args: tuple[str, ...]) -> None:
    # 2 would read as CRITICAL (quorum) or inconclusive (verify); a check that cannot run is 3.
    result = kgt(*args)
    assert result.code == 3, result
    assert "Error:" in result.err and "Traceback" not in result.err
    assert kgt("check", "quorum", "--help").code == 0


def test_lockstep_runs_the_seed_loop_one_region_at_a_time(example: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    monkeypatch.setattr("toolkit.check.sessions.connect", lambda *_args, **_session: FakeConnection(log))
    work = sessions.targets(example, "nodes")
    options = workload.Options(
        duration=None, iterations=2, interval=0.0, visible_within=0.0, settle=0.0, rtt_samples=0, mode="lockstep"
    )
    history = History()
    workload.run(example, work, "verify", history, options, threading.Event(), threading.Event())
    regions = [t.region for t in work]
    loop = [op for op in history.ops if op.process in regions]
    # Never two of the loop's operations in flight: each invoke follows the previous completion.
    assert [op.type for op in loop[0::2]] == ["invoke"] * (len(loop) // 2)
    assert all(a.process == b.process and a.f == b.f for a, b in zip(loop[0::2], loop[1::2], strict=True))
    order = [(op.f, op.process) for op in loop[0::2]]
    one = [(f, r) for f in ("status", "incr", "read") for r in regions]
    assert order == one * 2


@pytest.mark.parametrize(("mode", "sync_wait"), [("lockstep", 1), ("concurrent", 0)])
def test_lockstep_increments_wait_for_the_previous_regions_write(
    example: Topology, monkeypatch: pytest.MonkeyPatch, mode: str, sync_wait: int
) -> None:
    # With wsrep_sync_wait=0 the next region may still be applying the previous increment: its
    # locking read would see the old value and its write-set would lose certification (CI saw it).
    opened: list[dict[str, int]] = []

    def connect(*_args: Any, **session: int) -> FakeConnection:
        opened.append(session)
        return FakeConnection([])

    monkeypatch.setattr("toolkit.check.sessions.connect", connect)
    work = sessions.targets(example, "nodes")
    options = workload.Options(
        duration=None, iterations=1, interval=0.0, visible_within=0.0, settle=0.0, rtt_samples=0, mode=mode
    )
    workload.run(example, work, "verify", History(), options, threading.Event(), threading.Event())
    writers = [s for s in opened if "innodb_lock_wait_timeout" in s]
    assert len(writers) == len(work)
    assert all(s["wsrep_sync_wait"] == sync_wait and s["wsrep_dirty_reads"] == 0 for s in writers), writers


def test_unknown_mode_is_refused_before_anything_connects() -> None:
    with pytest.raises(CannotCheck, match="bad mode 'roundrobin'"):
        workload.Options(mode="roundrobin")


def worker_reading(
    example: Topology, monkeypatch: pytest.MonkeyPatch, shown: list[int], stop: threading.Event
) -> tuple[workload.Worker, History]:
    """A worker that needs r1 >= 2 to be visible, whose reads show `shown` one after the other."""
    monkeypatch.setattr("toolkit.check.sessions.connect", lambda *_args, **_session: FakeConnection([]))
    values = iter(shown)
    monkeypatch.setattr(workload, "read_counters", lambda _conn, schema: {"r1": next(values), "shared": 0})
    acked = workload.Acked()
    acked.note({"r1": 2})
    history = History()
    target = sessions.targets(example, "nodes")[0]
    return workload.Worker(target, "verify", history, acked, workload.Options(visible_within=5.0), stop), history


def test_a_read_is_repeated_until_it_shows_the_acknowledged_writes(
    example: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, history = worker_reading(example, monkeypatch, [0, 1, 2, 3], threading.Event())
    worker.read_and_verify()
    reads = [op for op in history.ops if op.f == "read" and op.type == "ok"]
    assert [(op.poll, op.value["r1"]) for op in reads] == [(0, 0), (1, 1), (2, 2)]


def test_a_stopped_worker_does_not_re_read(example: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    stop.set()
    worker, history = worker_reading(example, monkeypatch, [0, 1, 2], stop)
    worker.read_and_verify()
    assert [op.value["r1"] for op in history.ops if op.f == "read" and op.type == "ok"] == [0]


def test_final_reads_wait_for_synced_nodes_unless_aborted(example: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    statuses: list[str] = []
    monkeypatch.setattr("toolkit.check.sessions.connect", lambda *_args, **_session: FakeConnection(statuses))
    abort = threading.Event()
    abort.set()
    workload.final_reads(History(), example, "verify", workload.Options(settle=5.0), abort)
    assert statuses == []  # aborted: neither the settle wait nor the reads connect
    history = History()
    workload.final_reads(history, example, "verify", workload.Options(settle=5.0), threading.Event())
    assert {op.host for op in history.ops if op.f == "read" and op.type == "ok"} == {
        h.name for h in example.galera_nodes
    }
