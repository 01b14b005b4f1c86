"""`kgt health serve` against a real MariaDB Galera node started by the fixture (and garbd for quorum loss).

Each test gets a private, bootstrapped one-node cluster (own datadir and socket, no TCP
listener, gcomm on a free loopback port) and the endpoint running as a subprocess, exactly as
systemd runs it. Quorum loss is real: garbd joins as a second member and is SIGKILLed, so the
node is left with half the votes and turns non-Primary.

Needs Debian's `mariadb-server galera-4` (and `galera-arbitrator-4` for the quorum test).
"""

from __future__ import annotations

import getpass
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pymysql
import pytest

REPO = Path(__file__).resolve().parents[2]
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
MARIADBD = shutil.which("mariadbd", path=SBIN_PATH)
INSTALL_DB = shutil.which("mariadb-install-db", path=SBIN_PATH)
GARBD = shutil.which("garbd", path=SBIN_PATH)
PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
CLUSTER = "kgt-health-test"
HEALTH_PASSWORD = "health-s3cret"
# Short failure detection so quorum loss shows within ~2 s instead of the default ~5-15 s.
FAST_EVS = (
    "evs.suspect_timeout=PT1S;evs.inactive_timeout=PT2S;evs.keepalive_period=PT0.3S;"
    "evs.inactive_check_period=PT0.3S;evs.install_timeout=PT2S"
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (MARIADBD and INSTALL_DB and PROVIDER.exists()),
        reason="needs mariadbd and the Galera provider: apt-get install -y mariadb-server galera-4",
    ),
]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` every 0.1 s until it returns something truthy."""
    end = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:  # not yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout}s (last: {last})")


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 20.0) -> None:
    """End a process this module started, by its pid: SIGCONT (if frozen), SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class GaleraNode:
    """One mariadbd with wsrep on, bootstrapped as a new cluster, reachable only by its socket."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.error_log = base / "mysqld.err"
        self.gcomm_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        self.datadir.mkdir()
        argv = [str(INSTALL_DB), "--no-defaults", f"--user={getpass.getuser()}", f"--datadir={self.datadir}"]
        argv += ["--skip-test-db", "--auth-root-authentication-method=socket", "--innodb-log-file-size=8M"]
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        argv = [str(MARIADBD), "--no-defaults", f"--user={getpass.getuser()}", f"--datadir={self.datadir}"]
        argv += [f"--socket={self.socket}", f"--pid-file={self.base / 'mysqld.pid'}", f"--log-error={self.error_log}"]
        argv += ["--skip-networking", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"]
        argv += ["--binlog-format=ROW", "--innodb-autoinc-lock-mode=2"]
        argv += ["--wsrep-on=ON", f"--wsrep-provider={PROVIDER}", f"--wsrep-cluster-name={CLUSTER}"]
        argv += ["--wsrep-cluster-address=gcomm://", "--wsrep-new-cluster", "--wsrep-node-address=127.0.0.1"]
        options = f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm_port};gcache.size=8M;{FAST_EVS}"
        argv += [f"--wsrep-provider-options={options}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.status("wsrep_ready") == "ON", 60, f"mariadbd ready ({self.log_tail()})")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def connect(self) -> Any:
        return pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=2, autocommit=True)

    def sql(self, statement: str, *args: object) -> list[tuple[Any, ...]]:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, args or None)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def status(self, name: str) -> str:
        rows = self.sql("SHOW GLOBAL STATUS LIKE %s", name)
        return str(rows[0][1]) if rows else ""

    def log_tail(self) -> str:
        try:
            return " | ".join(self.error_log.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "no error log"

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def node() -> Iterator[GaleraNode]:
    # Not tmp_path: a unix socket path must stay under 108 bytes, and the datadir is not kept.
    base = Path(tempfile.mkdtemp(prefix="kgt-health-", dir="/tmp"))
    galera = GaleraNode(base)
    try:
        galera.install()
        galera.start()
        # What the health user needs: nothing beyond USAGE (SHOW STATUS/VARIABLES, SET SESSION).
        galera.sql("CREATE USER 'kgt_health'@'localhost' IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS 2", HEALTH_PASSWORD)
        yield galera
    finally:
        galera.stop()
        shutil.rmtree(base, ignore_errors=True)


class Endpoint:
    """`python -m toolkit.health serve` as a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, maintenance: Path) -> None:
        self.proc, self.port, self.log, self.maintenance = proc, port, log, maintenance

    def get(self, path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def wait_for(self, path: str, code: int, timeout: float = 10.0) -> str:
        """Poll `path` until it answers `code`; return the body."""
        return wait_until(
            lambda: (lambda answer: answer[1] if answer[0] == code else None)(self.get(path)),
            timeout,
            f"GET {path} -> {code}",
        )

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture
def endpoint(node: GaleraNode, tmp_path: Path) -> Iterator[Endpoint]:
    defaults = tmp_path / "health.cnf"
    defaults.write_text(f"[client]\nuser=kgt_health\npassword={HEALTH_PASSWORD}\nsocket={node.socket}\n")
    defaults.chmod(0o600)
    log, maintenance = tmp_path / "serve.log", tmp_path / "maintenance"
    argv = [sys.executable, "-m", "toolkit.health", "serve", "--bind", "127.0.0.1", "--port", "0"]
    argv += ["--defaults-file", str(defaults), "--maintenance-file", str(maintenance)]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        match = wait_until(lambda: re.search(r"listening on [\d.]+:(\d+)", log.read_text()), 10, "serve listening")
        yield Endpoint(proc, int(match.group(1)), log, maintenance)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0, "serve stops cleanly on SIGTERM"
        assert HEALTH_PASSWORD not in log.read_text()
    finally:
        stop_process(proc, grace=5)


def test_synced_primary_node_is_healthy_with_a_usage_only_user(node: GaleraNode, endpoint: Endpoint) -> None:
    grants = [row[0] for row in node.sql("SHOW GRANTS FOR 'kgt_health'@'localhost'")]
    assert len(grants) == 1
    assert grants[0].startswith("GRANT USAGE ON *.* TO `kgt_health`@`localhost`")

    assert endpoint.get("/write") == (200, "200 OK Primary Synced\n")
    assert endpoint.get("/read") == (200, "200 OK Primary Synced\n")
    assert endpoint.get("/") == (200, "200 OK Primary Synced\n")
    code, body = endpoint.get("/status")
    document = json.loads(body)
    assert code == 200
    assert document["wsrep"] == {
        "cluster_status": "Primary",
        "local_state": 4,
        "local_state_comment": "Synced",
        "ready": True,
        "connected": True,
        "cluster_size": 1,
        "wsrep_on": True,
        "dirty_reads": False,
        "dirty_read_ok": None,
    }
    check = subprocess.run(
        [sys.executable, "-m", "toolkit.health", "check", "--port", str(endpoint.port), "--path", "/read"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert (check.returncode, check.stdout) == (0, "200 OK Primary Synced\n")


def test_desynced_node_serves_reads_not_writes(node: GaleraNode, endpoint: Endpoint) -> None:
    node.sql("SET GLOBAL wsrep_desync=ON")
    try:
        body = endpoint.wait_for("/write", 503)
        assert body == "503 not Synced (wsrep_local_state=2 Donor/Desynced)\n"
        assert endpoint.get("/read") == (200, "200 OK Primary Donor/Desynced (reads may lag)\n")
    finally:
        node.sql("SET GLOBAL wsrep_desync=OFF")
    endpoint.wait_for("/write", 200)


def start_arbitrator(argv: list[str], node: GaleraNode, attempts: int = 5) -> subprocess.Popen[bytes]:
    """Start garbd and wait until it is a member (cluster size 2).

    garbd 26.4 sometimes exits at start-up, before opening gcomm ("Failed to set thread
    schedparams … No such process", seen on a busy 2-core machine): such a start is retried,
    a bounded number of times; a garbd that runs but never joins fails the test.
    """
    for _ in range(attempts):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda p=proc: p.poll() is not None or node.status("wsrep_cluster_size") == "2", 20, "garbd joined")
        if proc.poll() is None:
            # Joining, garbd takes a (trivial) state transfer: the node is Donor/Desynced until it ends.
            wait_until(lambda: node.status("wsrep_local_state_comment") == "Synced", 20, "node Synced again")
            return proc
    raise AssertionError(f"garbd exited at start-up {attempts} times (see its --log)")


@pytest.mark.skipif(GARBD is None, reason="needs garbd: apt-get install -y galera-arbitrator-4")
def test_node_that_lost_quorum_is_not_primary(node: GaleraNode, endpoint: Endpoint, tmp_path: Path) -> None:
    argv = [str(GARBD), "--address", f"gcomm://127.0.0.1:{node.gcomm_port}", "--group", CLUSTER, "--name", "arb"]
    argv += ["--options", f"gmcast.listen_addr=tcp://127.0.0.1:{free_port()};{FAST_EVS}"]
    argv += ["--log", str(tmp_path / "garbd.log")]
    arbitrator = start_arbitrator(argv, node)
    try:
        assert endpoint.wait_for("/write", 200) == "200 OK Primary Synced\n"
        # SIGKILL, not SIGTERM: garbd would leave gracefully and the node would keep quorum.
        arbitrator.kill()
        arbitrator.wait(5)
        assert endpoint.wait_for("/write", 503) == "503 not Primary (wsrep_cluster_status=non-Primary)\n"
        assert endpoint.get("/read") == (
            503,
            "503 not Primary (wsrep_cluster_status=non-Primary, wsrep_dirty_reads=OFF)\n",
        )

        node.sql("SET GLOBAL wsrep_dirty_reads=ON")
        assert endpoint.get("/read") == (
            200,
            "200 OK dirty reads (wsrep_cluster_status=non-Primary, wsrep_dirty_reads=ON)\n",
        )
        assert endpoint.get("/write")[0] == 503

        node.sql("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
        endpoint.wait_for("/write", 200)
    finally:
        stop_process(arbitrator, grace=2)
    log = endpoint.log_lines()
    # Dozens of checks were answered 503; the log says so once.
    assert sum("/write 503 not Primary" in line for line in log) == 1, log
    assert any(line.startswith("kgt-health: /write 200 OK Primary Synced (was: 503 not Primary") for line in log)


def test_maintenance_file_forces_503_everywhere(endpoint: Endpoint) -> None:
    assert endpoint.get("/write")[0] == 200
    endpoint.maintenance.touch()
    for path in ("/", "/write", "/read"):
        assert endpoint.get(path) == (503, f"503 maintenance ({endpoint.maintenance} exists)\n")
    assert endpoint.get("/status")[0] == 503
    endpoint.maintenance.unlink()
    assert endpoint.get("/write") == (200, "200 OK Primary Synced\n")


def test_hung_database_answers_503_in_time(node: GaleraNode, endpoint: Endpoint) -> None:
    assert endpoint.get("/write")[0] == 200
    os.kill(node.pid, signal.SIGSTOP)
    try:
        for path in ("/write", "/read"):
            started = time.monotonic()
            code, body = endpoint.get(path)
            elapsed = time.monotonic() - started
            # The first check hits the 1.5 s deadline; the next one may share that probe,
            # which pymysql's 2 s read timeout ends: either way 503, and in time.
            assert code == 503
            assert body.startswith("503 database unreachable: "), body
            assert elapsed < 2.0
    finally:
        os.kill(node.pid, signal.SIGCONT)
    endpoint.wait_for("/write", 200)


def test_stopped_database_is_unreachable_within_3s(node: GaleraNode, endpoint: Endpoint) -> None:
    assert endpoint.get("/write")[0] == 200
    started = time.monotonic()
    assert node.proc is not None
    node.proc.terminate()
    body = endpoint.wait_for("/write", 503, timeout=3.0)
    assert time.monotonic() - started < 3.0
    assert body.startswith("503 database unreachable: ")
    node.proc.wait(30)
    code, body = endpoint.get("/read")
    assert code == 503
    assert re.fullmatch(r"503 database unreachable: Can't connect to MySQL server .*\(2003\)\n", body), body
