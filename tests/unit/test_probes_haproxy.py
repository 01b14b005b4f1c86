"""`kgt probe haproxy` against a fake HAProxy stats listener serving a hand-written CSV."""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_probes_fakes import example_topology, http_server, password_file, run, silent_listener

# HAProxy's CSV is driven by its header line; these are the columns the probe reads.
HEADER = "# pxname,svname,scur,status,weight,act,bck,iid,sid,check_status,check_duration,"


def backend(name: str, iid: int, servers: list[tuple[str, str, bool]]) -> list[str]:
    """Rows of one `listen` section: FRONTEND, one per server (name, status, backup), BACKEND."""
    rows = [f"{name},FRONTEND,0,OPEN,,,,{iid},0,,,"]
    for sid, (server, status, backup) in enumerate(servers, start=1):
        check = "L7OK,3" if status == "UP" else "L7STS,2"
        rows.append(
            f"{name},{server},{2 if status == 'UP' else 0},{status},1,{0 if backup else 1},"
            f"{1 if backup else 0},{iid},{sid},{check},"
        )
    active = sum(1 for _, st, b in servers if st == "UP" and not b)
    backups = sum(1 for _, st, b in servers if st == "UP" and b)
    rows.append(f"{name},BACKEND,2,{'UP' if active + backups else 'DOWN'},1,{active},{backups},{iid},0,,,")
    return rows


def stats_csv(write: list[str], read: list[str], keystone: list[str] | None) -> str:
    """A stats page for r1-proxy1: statuses of r1-db1, r2-db1, r3-db1 in each listener.

    As rendered, galera-write ends with the read-only fallbacks, which track galera-read.
    """
    names = ("r1-db1", "r2-db1", "r3-db1")

    def servers(statuses: list[str]) -> list[tuple[str, str, bool]]:
        return [(n, s, i > 0) for i, (n, s) in enumerate(zip(names, statuses, strict=True))]

    fallbacks = [(f"{n}-readonly", s, True) for n, s in zip(names, read, strict=True)]
    rows = [HEADER]
    rows += backend("galera-write", 2, servers(write) + fallbacks)
    rows += backend("galera-read", 3, servers(read))
    if keystone is not None:
        rows += backend("keystone-api", 4, servers(keystone))
    rows += ["stats,FRONTEND,0,OPEN,,,,5,0,,,", "stats,BACKEND,0,UP,0,0,0,5,0,,,"]
    return "\n".join(rows) + "\n"


HEALTHY = stats_csv(["UP", "UP", "UP"], ["UP", "UP", "UP"], ["UP", "UP", "UP"])


class FakeStats:
    """What the fake listener serves; tests change it."""

    body = HEALTHY
    password = "statspw"
    delay = 0.0
    paths: list[str] = []  # noqa: RUF012


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        FakeStats.paths.append(self.path)
        time.sleep(FakeStats.delay)
        expected = "Basic " + base64.b64encode(f"kgt:{FakeStats.password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="HAProxy Statistics"')
            self.end_headers()
            return
        if self.path != "/stats/;csv;norefresh":
            self.send_response(404)
            self.end_headers()
            return
        body = FakeStats.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def stats() -> Iterator[int]:
    FakeStats.body, FakeStats.password, FakeStats.delay, FakeStats.paths = HEALTHY, "statspw", 0.0, []
    with http_server(Handler) as port:
        yield port


def probe(tmp_path: Path, port: int, *extra: str) -> object:
    topology = example_topology(tmp_path)
    return run("haproxy", str(topology), "--proxy", "r1-proxy1", "-H", "127.0.0.1", "-P", str(port), *extra)


def test_healthy_proxy_is_ok_with_perfdata_per_backend(tmp_path: Path, stats: int) -> None:
    out = probe(tmp_path, stats)
    assert out.state == "OK", out.stdout
    assert "galera-write served by r1-db1" in out.text
    assert FakeStats.paths == ["/stats/;csv;norefresh"]
    for name in ("galera-write", "galera-read", "keystone-api"):
        assert out.perf[f"{name}_up"]["value"] == "3"
        assert out.perf[f"{name}_up"]["crit"] == "1:"
        assert out.perf[f"{name}_up"]["max"] == "3"
        assert out.perf[f"{name}_check"]["uom"] == "ms"
        assert f"{name}_sessions" in out.perf
    assert "stats_up" not in out.perf  # the stats listener has no servers


def test_region_served_by_another_regions_backup_is_warning_naming_it(tmp_path: Path, stats: int) -> None:
    FakeStats.body = stats_csv(["DOWN", "UP", "UP"], ["DOWN", "UP", "UP"], ["UP", "UP", "UP"])
    out = probe(tmp_path, stats)
    assert out.state == "WARNING", out.stdout
    assert "galera-write of r1 served by region r2 (r2-db1, backup)" in out.text
    assert "galera-read of r1 served by region r2" in out.text
    assert "keystone-api" not in out.text


def test_write_listener_on_its_read_only_fallback_is_critical_naming_the_region(tmp_path: Path, stats: int) -> None:
    # r1 cut off from the Primary component: no node passes /write, r1-db1 still serves dirty reads.
    FakeStats.body = stats_csv(["DOWN", "DOWN", "DOWN"], ["UP", "DOWN", "DOWN"], ["UP", "DOWN", "DOWN"])
    out = probe(tmp_path, stats)
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith("galera-write: no server up (of 3)")  # the fallback is not a writer
    assert "galera-write of r1 read-only: no writer reachable, r1-db1 serves reads only (writes fail)" in out.text
    assert out.perf["galera-write_up"]["value"] == "0"


def test_backend_without_server_up_is_critical(tmp_path: Path, stats: int) -> None:
    FakeStats.body = stats_csv(["DOWN", "UP", "UP"], ["UP", "UP", "UP"], ["DOWN", "DOWN", "DOWN"])
    out = probe(tmp_path, stats)
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith("keystone-api: no server up (of 3)")
    assert "galera-write of r1 served by region r2" in out.text  # the warning is still reported
    assert out.perf["keystone-api_up"]["value"] == "0"


def test_warning_range_on_servers_up(tmp_path: Path, stats: int) -> None:
    FakeStats.body = stats_csv(["UP", "DOWN", "UP"], ["UP", "UP", "UP"], ["UP", "UP", "UP"])
    out = probe(tmp_path, stats, "-w", "3:")
    assert out.state == "WARNING", out.stdout
    assert "galera-write: 2/3 servers up, outside 3:" in out.text


def test_backend_missing_from_stats_is_critical(tmp_path: Path, stats: int) -> None:
    FakeStats.body = stats_csv(["UP", "UP", "UP"], ["UP", "UP", "UP"], None)
    out = probe(tmp_path, stats)
    assert out.state == "CRITICAL", out.stdout
    assert "keystone-api: missing from the stats of r1-proxy1" in out.text


def test_without_topology_any_backup_serving_is_warning(tmp_path: Path, stats: int) -> None:
    FakeStats.body = stats_csv(["DOWN", "UP", "UP"], ["UP", "UP", "UP"], ["UP", "UP", "UP"])
    out = run(
        "haproxy",
        "--url",
        f"http://127.0.0.1:{stats}/stats",
        "--password-file",
        str(password_file(tmp_path, "statspw")),
    )
    assert out.state == "WARNING", out.stdout
    assert "galera-write served by backup r2-db1" in out.text


def test_wrong_credentials_are_unknown(tmp_path: Path, stats: int) -> None:
    out = run(
        "haproxy", "--url", f"http://127.0.0.1:{stats}/stats", "--password-file", str(password_file(tmp_path, "wrong"))
    )
    assert out.state == "UNKNOWN", out.stdout
    assert "rejected the credentials of kgt" in out.text


def test_unreachable_stats_listener_is_critical(tmp_path: Path) -> None:
    topology = example_topology(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        out = run("haproxy", str(topology), "--proxy", "r1-proxy1", "-H", "127.0.0.1", "-P", str(port))
    assert out.state == "CRITICAL", out.stdout
    assert "unreachable" in out.text and "Connection refused" in out.text


@pytest.mark.parametrize("hang", ["silent-tcp", "slow-http"])
def test_timeout_is_honoured_against_a_hung_listener(tmp_path: Path, stats: int, hang: str) -> None:
    FakeStats.delay = 30.0
    with silent_listener() as silent:
        port = silent if hang == "silent-tcp" else stats
        out = probe(tmp_path, port, "-t", "2")
    assert out.state in ("CRITICAL", "UNKNOWN")
    assert out.seconds < 2 + 1 + 1.5, out.seconds  # timeout + 1 s, plus interpreter start-up
    FakeStats.delay = 0.0


@contextlib.contextmanager
def admin_socket(path: Path, body: str) -> Iterator[None]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(0.2)
    stop = threading.Event()
    asked: list[bytes] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                asked.append(conn.recv(1024))
                conn.sendall(body.encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2)
        server.close()
        os.unlink(path)
    assert asked == [b"show stat\n"]


def test_admin_socket_reads_show_stat(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    topology = example_topology(tmp_path)
    body = stats_csv(["UP", "UP", "UP"], ["DOWN", "DOWN", "UP"], ["UP", "UP", "UP"])
    with admin_socket(path, body):
        out = run("haproxy", "--socket", str(path), str(topology), "--proxy", "r1-proxy1")
    assert out.state == "WARNING", out.stdout
    assert "galera-read of r1 served by region r3 (r3-db1, backup)" in out.text
