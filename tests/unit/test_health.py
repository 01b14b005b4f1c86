"""Unit tests of toolkit.health: every verdict branch, the probe, and the HTTP server with fake fetchers."""

from __future__ import annotations

import http.client
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymysql
import pytest
from click.testing import CliRunner

from toolkit.health import status
from toolkit.health.commands import health
from toolkit.health.server import HealthServer, Prober
from toolkit.health.status import (
    DEFAULT_SOCKET,
    DbSettings,
    Probe,
    Unreachable,
    Verdict,
    WsrepValues,
    describe,
    status_document,
    verdict,
)

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- builders


def make_values(**changes: Any) -> WsrepValues:
    """A healthy node (Primary, Synced, ready); override what the test is about."""
    healthy = WsrepValues(
        cluster_status="Primary",
        local_state=4,
        local_state_comment="Synced",
        ready=True,
        connected=True,
        cluster_size=3,
        wsrep_on=True,
        dirty_reads=False,
    )
    return replace(healthy, **changes)


NON_PRIMARY = {"cluster_status": "non-Primary", "local_state": 0, "local_state_comment": "Initialized", "ready": False}
DONOR = {"local_state": 2, "local_state_comment": "Donor/Desynced"}


# ---------------------------------------------------------------- verdict

CASES: list[tuple[str, Probe, str, Verdict]] = [
    ("healthy write", make_values(), "/write", Verdict(200, "OK Primary Synced")),
    ("healthy root is write", make_values(), "/", Verdict(200, "OK Primary Synced")),
    ("healthy read", make_values(), "/read", Verdict(200, "OK Primary Synced")),
    (
        "non-Primary write",
        make_values(**NON_PRIMARY),
        "/write",
        Verdict(503, "not Primary (wsrep_cluster_status=non-Primary)"),
    ),
    (
        "non-Primary read without dirty reads",
        make_values(**NON_PRIMARY),
        "/read",
        Verdict(503, "not Primary (wsrep_cluster_status=non-Primary, wsrep_dirty_reads=OFF)"),
    ),
    (
        "non-Primary read with dirty reads",
        make_values(**NON_PRIMARY, dirty_reads=True, dirty_read_ok=True),
        "/read",
        Verdict(200, "OK dirty reads (wsrep_cluster_status=non-Primary, wsrep_dirty_reads=ON)"),
    ),
    (
        "non-Primary write with dirty reads",
        make_values(**NON_PRIMARY, dirty_reads=True, dirty_read_ok=True),
        "/write",
        Verdict(503, "not Primary (wsrep_cluster_status=non-Primary)"),
    ),
    (
        "non-Primary read, dirty read failed",
        make_values(**NON_PRIMARY, dirty_reads=True, dirty_read_ok=False),
        "/read",
        Verdict(503, "not Primary (wsrep_cluster_status=non-Primary, dirty read failed)"),
    ),
    (
        "non-Primary read, dirty reads on but not tried",
        make_values(**NON_PRIMARY, dirty_reads=True, dirty_read_ok=None),
        "/read",
        Verdict(503, "not Primary (wsrep_cluster_status=non-Primary, dirty read failed)"),
    ),
    (
        "non-Primary Joining never serves dirty reads",
        make_values(
            **{**NON_PRIMARY, "local_state": 1, "local_state_comment": "Joining: receiving State Transfer"},
            dirty_reads=True,
            dirty_read_ok=True,
        ),
        "/read",
        Verdict(
            503,
            "not Primary (wsrep_cluster_status=non-Primary, wsrep_local_state=1 Joining: receiving State Transfer)",
        ),
    ),
    (
        "Disconnected write",
        make_values(**{**NON_PRIMARY, "cluster_status": "Disconnected"}),
        "/write",
        Verdict(503, "not Primary (wsrep_cluster_status=Disconnected)"),
    ),
    (
        "Donor write",
        make_values(**DONOR),
        "/write",
        Verdict(503, "not Synced (wsrep_local_state=2 Donor/Desynced)"),
    ),
    ("Donor read", make_values(**DONOR), "/read", Verdict(200, "OK Primary Donor/Desynced (reads may lag)")),
    (
        "Donor read, not ready",
        make_values(**DONOR, ready=False),
        "/read",
        Verdict(503, "not ready (wsrep_ready=OFF)"),
    ),
    (
        "Joined write",
        make_values(local_state=3, local_state_comment="Joined"),
        "/write",
        Verdict(503, "not Synced (wsrep_local_state=3 Joined)"),
    ),
    (
        "Joined read",
        make_values(local_state=3, local_state_comment="Joined"),
        "/read",
        Verdict(503, "not Synced (wsrep_local_state=3 Joined)"),
    ),
    ("not ready write", make_values(ready=False), "/write", Verdict(503, "not ready (wsrep_ready=OFF)")),
    ("not ready read", make_values(ready=False), "/read", Verdict(503, "not ready (wsrep_ready=OFF)")),
    ("wsrep off", make_values(wsrep_on=False), "/read", Verdict(503, "not a Galera node (wsrep_on=OFF)")),
    (
        "unreachable write",
        Unreachable("Can't connect (2002)"),
        "/write",
        Verdict(503, "database unreachable: Can't connect (2002)"),
    ),
    (
        "unreachable read",
        Unreachable("no answer within 1.5s"),
        "/read",
        Verdict(503, "database unreachable: no answer within 1.5s"),
    ),
]


@pytest.mark.parametrize(("probe", "path", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdict(probe: Probe, path: str, expected: Verdict) -> None:
    assert verdict(probe, path) == expected


def test_donor_reads_can_be_refused() -> None:
    assert verdict(make_values(**DONOR), "/read", donor_reads=False) == Verdict(
        503, "not Synced (wsrep_local_state=2 Donor/Desynced)"
    )


@pytest.mark.parametrize("path", ["/", "/write", "/read"])
@pytest.mark.parametrize("probe", [make_values(), Unreachable("down"), None])
def test_maintenance_wins_on_every_path(probe: Probe | None, path: str) -> None:
    answer = verdict(probe, path, Path("/etc/kgt/maintenance"))
    assert answer == Verdict(503, "maintenance (/etc/kgt/maintenance exists)")
    assert answer.line == "503 maintenance (/etc/kgt/maintenance exists)"


def test_verdict_rejects_unknown_path_and_missing_probe() -> None:
    with pytest.raises(ValueError, match="no verdict"):
        verdict(make_values(), "/status")
    with pytest.raises(ValueError, match="a probe is needed"):
        verdict(None, "/write")


def test_state_text_falls_back_to_the_state_name() -> None:
    assert make_values(local_state=2, local_state_comment="").state_text == "2 Donor/Desynced"
    assert make_values(local_state=9, local_state_comment="").state_text == "9 unknown"


# ---------------------------------------------------------------- values, status document, settings


def test_values_from_show_rows() -> None:
    values = WsrepValues.from_rows(
        {
            "wsrep_cluster_status": "Primary",
            "wsrep_local_state": "4",
            "wsrep_local_state_comment": "Synced",
            "wsrep_ready": "ON",
            "wsrep_connected": "ON",
            "wsrep_cluster_size": "3",
        },
        {"wsrep_on": "ON", "wsrep_dirty_reads": "OFF"},
    )
    assert values == make_values()


def test_values_from_a_server_without_galera() -> None:
    values = WsrepValues.from_rows({}, {"wsrep_on": "OFF"})
    assert values.cluster_status == "unknown"
    assert (values.local_state, values.ready, values.cluster_size, values.wsrep_on) == (0, False, 0, False)


def test_status_document_of_a_healthy_node() -> None:
    code, document = status_document(make_values(**DONOR), None)
    assert code == 200
    assert document["maintenance"] is None
    assert document["error"] is None
    assert document["wsrep"]["local_state"] == 2
    assert document["verdicts"] == {
        "/write": {"code": 503, "reason": "not Synced (wsrep_local_state=2 Donor/Desynced)"},
        "/read": {"code": 200, "reason": "OK Primary Donor/Desynced (reads may lag)"},
    }


def test_status_document_is_503_when_unreachable_or_in_maintenance() -> None:
    code, document = status_document(Unreachable("boom"), None)
    assert (code, document["error"], document["wsrep"]) == (503, "boom", None)
    code, document = status_document(make_values(), Path("/m"))
    assert (code, document["maintenance"]) == (503, "/m")
    assert document["wsrep"]["cluster_status"] == "Primary"


@pytest.mark.parametrize(
    ("client", "socket"),
    [
        ("user=h\npassword=p\nsocket=/run/x.sock\n", None),
        ("user=h\npassword=p\nhost=db1\nport=3307\n", None),
        ("user=h\npassword=p\n", DEFAULT_SOCKET),
    ],
    ids=["socket in file", "host in file", "neither"],
)
def test_default_socket_only_when_the_file_names_no_server(tmp_path: Path, client: str, socket: str | None) -> None:
    cnf = tmp_path / "health.cnf"
    cnf.write_text("[client]\n" + client)
    settings = DbSettings.from_defaults_file(cnf)
    assert settings.socket == socket
    assert (settings.connect_timeout, settings.read_timeout) == (1.0, 2.0)


def test_describe_is_one_short_line() -> None:
    assert describe(pymysql.err.OperationalError(2003, "Can't connect\n to server")) == "Can't connect to server (2003)"
    assert describe(TimeoutError()) == "TimeoutError"
    assert len(describe(RuntimeError("x" * 500))) == 200


# ---------------------------------------------------------------- fetch and probe (fake connection)


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str) -> None:
        self.conn.queries.append(sql)
        if sql.startswith("SHOW GLOBAL STATUS"):
            self.rows = list(self.conn.status.items())
        elif sql.startswith("SHOW GLOBAL VARIABLES"):
            self.rows = list(self.conn.variables.items())
        elif sql == "SELECT 1":
            if self.conn.dirty_error:
                raise pymysql.err.OperationalError(1047, "WSREP has not yet prepared node for application use")
            self.rows = [(1,)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


class FakeConnection:
    def __init__(self, status: dict[str, str], variables: dict[str, str], dirty_error: bool = False) -> None:
        self.status, self.variables, self.dirty_error = status, variables, dirty_error
        self.queries: list[str] = []
        self.open = True

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.open = False


NON_PRIMARY_ROWS = {"wsrep_cluster_status": "non-Primary", "wsrep_local_state": "0", "wsrep_ready": "OFF"}


@pytest.mark.parametrize(
    ("rows", "variables", "dirty_error", "dirty_read_ok"),
    [
        ({"wsrep_cluster_status": "Primary"}, {"wsrep_dirty_reads": "ON"}, False, None),
        (NON_PRIMARY_ROWS, {"wsrep_dirty_reads": "OFF"}, False, None),
        (NON_PRIMARY_ROWS, {"wsrep_dirty_reads": "ON"}, False, True),
        (NON_PRIMARY_ROWS, {"wsrep_dirty_reads": "ON"}, True, False),
    ],
    ids=["Primary: no dirty probe", "dirty reads off: no probe", "dirty read works", "dirty read fails"],
)
def test_fetch_values_probes_dirty_reads_only_when_they_matter(
    monkeypatch: pytest.MonkeyPatch,
    rows: dict[str, str],
    variables: dict[str, str],
    dirty_error: bool,
    dirty_read_ok: bool | None,
) -> None:
    conn = FakeConnection(rows, {"wsrep_on": "ON", **variables}, dirty_error)
    monkeypatch.setattr(status, "_connect", lambda settings: conn)
    values = status.fetch_values(DbSettings(Path("/dev/null")))
    assert values.dirty_read_ok is dirty_read_ok
    assert ("SET SESSION wsrep_dirty_reads=1" in conn.queries) is (dirty_read_ok is not None)
    assert not conn.open


def test_probe_turns_errors_into_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(settings: DbSettings) -> Any:
        raise pymysql.err.OperationalError(1045, "Access denied for user 'kgt_health'@'localhost'")

    monkeypatch.setattr(status, "_connect", refuse)
    assert status.probe(DbSettings(Path("/dev/null"))) == Unreachable(
        "Access denied for user 'kgt_health'@'localhost' (1045)"
    )


def test_probe_of_a_missing_socket(tmp_path: Path) -> None:
    cnf = tmp_path / "health.cnf"
    cnf.write_text(f"[client]\nuser=u\npassword=p\nsocket={tmp_path}/no.sock\n")
    result = status.probe(DbSettings.from_defaults_file(cnf))
    assert isinstance(result, Unreachable)
    assert "(2003)" in result.error


# ---------------------------------------------------------------- Prober


def test_prober_times_out_a_hung_fetch_and_shares_it() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hang() -> Probe:
        calls.append(1)
        release.wait(10)
        return make_values()

    prober = Prober(hang, deadline=0.3)
    results: list[Probe] = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(prober.probe())) for _ in range(5)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        elapsed = time.monotonic() - started
        assert results == [Unreachable("no answer within 0.3s")] * 5
        assert elapsed < 1.5
        assert len(calls) == 1, "concurrent checks share one query"
    finally:
        release.set()
    time.sleep(0.05)
    assert prober.probe() == make_values()  # the finished fetch answers the next caller
    assert len(calls) == 2


def test_prober_turns_a_fetch_error_into_unreachable() -> None:
    def fail() -> Probe:
        raise RuntimeError("kaput")

    assert Prober(fail).probe() == Unreachable("kaput")


# ---------------------------------------------------------------- HTTP server


class FakeFetch:
    """A fetcher whose answer the test changes while the server runs."""

    def __init__(self, answer: Probe) -> None:
        self.answer = answer
        self.hang = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Probe:
        if self.hang.is_set():
            self.release.wait(10)
        return self.answer


@pytest.fixture
def maintenance_file(tmp_path: Path) -> Path:
    return tmp_path / "maintenance"


@pytest.fixture
def fetch() -> Iterator[FakeFetch]:
    fake = FakeFetch(make_values())
    yield fake
    fake.release.set()


@pytest.fixture
def server(fetch: FakeFetch, maintenance_file: Path) -> Iterator[HealthServer]:
    srv = HealthServer(("127.0.0.1", 0), Prober(fetch, deadline=0.5), maintenance_file)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def test_healthy_node_answers_200_everywhere(server: HealthServer) -> None:
    for path in ("/", "/write", "/read", "/write?x=1"):
        code, headers, body = get(server.port, path)
        assert (code, body) == (200, "200 OK Primary Synced\n"), path
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert headers["content-length"] == str(len(body))
        assert headers["connection"] == "close"
        assert headers["server"] == "kgt-health"


def test_failures_answer_503_with_one_line(server: HealthServer, fetch: FakeFetch) -> None:
    fetch.answer = make_values(**NON_PRIMARY)
    code, _, body = get(server.port, "/write")
    assert (code, body) == (503, "503 not Primary (wsrep_cluster_status=non-Primary)\n")
    fetch.answer = make_values(**DONOR)
    assert get(server.port, "/write")[::2] == (503, "503 not Synced (wsrep_local_state=2 Donor/Desynced)\n")
    assert get(server.port, "/read")[::2] == (200, "200 OK Primary Donor/Desynced (reads may lag)\n")
    fetch.answer = Unreachable("Can't connect (2002)")
    assert get(server.port, "/read")[::2] == (503, "503 database unreachable: Can't connect (2002)\n")


def test_head_and_options_and_unknown_paths(server: HealthServer) -> None:
    code, headers, body = get(server.port, "/write", "HEAD")
    assert (code, body, headers["content-length"]) == (200, "", str(len("200 OK Primary Synced\n")))
    assert get(server.port, "/", "OPTIONS")[0] == 200
    code, _, body = get(server.port, "/nope")
    assert code == 404
    assert body.count("\n") == 1


def test_status_is_json(server: HealthServer, fetch: FakeFetch) -> None:
    code, headers, body = get(server.port, "/status")
    assert (code, headers["content-type"]) == (200, "application/json")
    assert '"cluster_status": "Primary"' in body
    fetch.answer = Unreachable("down")
    assert get(server.port, "/status")[0] == 503


def test_maintenance_file_toggled_at_runtime(server: HealthServer, maintenance_file: Path) -> None:
    assert get(server.port, "/write")[0] == 200
    maintenance_file.touch()
    for path in ("/", "/write", "/read", "/status"):
        code, _, body = get(server.port, path)
        assert code == 503, path
        if path != "/status":
            assert body == f"503 maintenance ({maintenance_file} exists)\n"
    maintenance_file.unlink()
    assert get(server.port, "/read")[0] == 200


def test_hung_database_answers_503_within_the_deadline(server: HealthServer, fetch: FakeFetch) -> None:
    fetch.hang.set()
    started = time.monotonic()
    code, _, body = get(server.port, "/write")
    elapsed = time.monotonic() - started
    assert (code, body) == (503, "503 database unreachable: no answer within 0.5s\n")
    assert elapsed < 1.5
    fetch.hang.clear()
    fetch.release.set()
    time.sleep(0.05)
    assert get(server.port, "/write")[0] == 200


def test_logs_once_per_state_change(server: HealthServer, fetch: FakeFetch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="toolkit.health")
    for _ in range(3):
        get(server.port, "/write")
    fetch.answer = make_values(**NON_PRIMARY)
    for _ in range(3):
        get(server.port, "/write")
        get(server.port, "/")  # the same check as /write
    fetch.answer = make_values()
    for _ in range(3):
        get(server.port, "/write")
    assert [r.getMessage() for r in caplog.records] == [
        "/write 503 not Primary (wsrep_cluster_status=non-Primary)",
        "/write 200 OK Primary Synced (was: 503 not Primary (wsrep_cluster_status=non-Primary))",
    ]


def test_a_crashing_check_is_a_503(server: HealthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(path: str) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(server, "respond", crash)
    assert get(server.port, "/write")[::2] == (503, "503 health check failed: bug\n")


# ---------------------------------------------------------------- CLI


def test_check_prints_the_line_and_exits_0_or_2(server: HealthServer, fetch: FakeFetch) -> None:
    runner = CliRunner()
    result = runner.invoke(health, ["check", "--port", str(server.port)])
    assert (result.exit_code, result.output) == (0, "200 OK Primary Synced\n")
    fetch.answer = make_values(ready=False)
    result = runner.invoke(health, ["check", "--port", str(server.port), "--path", "/read"])
    assert (result.exit_code, result.output) == (2, "503 not ready (wsrep_ready=OFF)\n")


def test_check_of_a_closed_port_exits_2(unused_port: int) -> None:
    result = CliRunner().invoke(health, ["check", "--port", str(unused_port), "--timeout", "1"])
    assert result.exit_code == 2
    assert result.output.startswith(f"health endpoint 127.0.0.1:{unused_port} unreachable:")


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_refuses_a_missing_defaults_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(health, ["serve", "--defaults-file", str(tmp_path / "none.cnf")])
    assert result.exit_code == 2
    assert "--defaults-file" in result.output


def wait_for_port(log: Path, deadline: float = 10.0) -> int:
    """The port `serve --port 0` bound, read from its first log line."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        match = re.search(r"listening on [\d.]+:(\d+)", log.read_text())
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise AssertionError(f"serve did not start: {log.read_text()}")


def start_serve(tmp_path: Path, defaults_file: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    """`python -m toolkit.health serve` as a subprocess, as systemd runs it; returns it, its log, its port."""
    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "toolkit.health", "serve", "--bind", "127.0.0.1", "--port", "0"]
    argv += ["--defaults-file", str(defaults_file), "--maintenance-file", str(tmp_path / "maintenance"), *extra]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        return proc, log, wait_for_port(log)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def test_serve_subprocess_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cnf = tmp_path / "health.cnf"
    cnf.write_text(f"[client]\nuser=kgt_health\npassword=s3cret\nsocket={tmp_path}/none.sock\n")
    cnf.chmod(0o600)
    proc, log, port = start_serve(tmp_path, cnf)
    try:
        code, _, body = get(port, "/write")
        assert code == 503
        assert body.startswith("503 database unreachable: Can't connect")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        stop_serve(proc)
    text = log.read_text()
    assert "s3cret" not in text
    assert text.splitlines()[-1] == "kgt-health: stopped on SIGTERM"
    assert "world-readable" not in text


def test_serve_warns_about_a_world_readable_defaults_file(tmp_path: Path) -> None:
    cnf = tmp_path / "health.cnf"
    cnf.write_text(f"[client]\nsocket={tmp_path}/none.sock\n")
    cnf.chmod(0o644)
    proc, log, _ = start_serve(tmp_path, cnf)
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0
    finally:
        stop_serve(proc)
    assert "is world-readable" in log.read_text()
