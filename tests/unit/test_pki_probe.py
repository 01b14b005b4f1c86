"""`kgt probe cert` against TLS servers on 127.0.0.1 serving certificates of a test PKI.

Plain TLS listeners, and a fake MariaDB that sends a MySQL greeting offering TLS,
reads the SSLRequest and then does the handshake (the path of port 3306).
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import example_text, write_topology
from test_probes_fakes import run

from toolkit import cli

GREETING_CAPS = 0x0200 | 0x0800 | 0x8000  # PROTOCOL_41, SSL, SECURE_CONNECTION


def make_site(tmp_path: Path, tls: str = "tls: {}") -> Path:
    text = example_text(tls).replace(
        "secrets:\n  file: example.secrets.yaml\n  create: true", "secrets: {file: secrets.yaml}"
    )
    topology = write_topology(tmp_path, text, "example.yaml")
    assert cli.main(["pki", "init", str(topology)]) == 0
    return topology


def greeting(caps: int) -> bytes:
    body = b"\x0a" + b"10.11.6-MariaDB\0" + struct.pack("<I", 7) + b"12345678" + b"\0"
    body += struct.pack("<HBHH", caps & 0xFFFF, 45, 2, caps >> 16) + b"\x15" + b"\0" * 10 + b"123456789012\0"
    body += b"mysql_native_password\0"
    return struct.pack("<I", len(body))[:3] + b"\x00" + body


class Server:
    """A TLS listener on 127.0.0.1 serving HOST's certificate; `mysql` sends a greeting first."""

    def __init__(self, certs: Path, host: str, mysql: bool = False, caps: int = GREETING_CAPS) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certs / f"{host}.crt", certs / f"{host}.key")
        self.mysql, self.caps = mysql, caps
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.ssl_requests: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                if self.mysql:
                    conn.sendall(greeting(self.caps))
                    if not self.caps & 0x0800:
                        conn.close()
                        continue
                    self.ssl_requests.append(conn.recv(36))
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.close()


def certs_of(topology: Path) -> Path:
    return topology.parent / "example.pki" / "certs"


def serving(tmp_path: Path, serve: list[Server], host: str, tls: str = "tls: {}", **kw: bool | int) -> tuple[Path, str]:
    """A test PKI in tmp_path and a server presenting `host`'s certificate; (topology, its port)."""
    topology = make_site(tmp_path, tls)
    server = Server(certs_of(topology), host, **kw)  # type: ignore[arg-type]
    serve.append(server)
    return topology, str(server.port)


def test_the_right_certificate_is_ok_with_days_left(tmp_path: Path, serve: list[Server]) -> None:
    topology, port = serving(tmp_path, serve, "r1-proxy1")
    out = run("cert", str(topology), "--node", "r1-proxy1", "-H", "127.0.0.1", "-P", port)
    assert out.state == "OK", out.stdout
    assert "r1-proxy1 (127.0.0.1:" in out.text and "presents a certificate of the site CA" in out.text
    assert out.perf["days_left"]["uom"] == ""
    assert 363 <= float(out.perf["days_left"]["value"]) <= 365
    assert out.perf["days_left"]["warn"] == "30:" and out.perf["days_left"]["crit"] == "7:"


def test_a_vip_is_checked_for_its_keystone_name(tmp_path: Path, serve: list[Server]) -> None:
    topology, port = serving(tmp_path, serve, "r2-proxy2")
    out = run("cert", str(topology), "--vip", "r2-vip1", "-H", "127.0.0.1", "-P", port)
    assert out.state == "OK", out.stdout
    wrong = run("cert", str(topology), "--vip", "r1-vip1", "-H", "127.0.0.1", "-P", port)
    assert wrong.state == "CRITICAL"
    assert wrong.text.startswith("certificate lacks keystone.r1.kgt.example, 10.213.1.100"), wrong.text


def test_another_hosts_certificate_is_critical(tmp_path: Path, serve: list[Server]) -> None:
    topology, port = serving(tmp_path, serve, "r2-db1")
    out = run("cert", str(topology), "--node", "r1-db1", "-H", "127.0.0.1", "-P", port, "--protocol", "tls")
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith("certificate lacks r1-db1, r1-db1.kgt.example, 10.213.1.11 (has r2-db1"), out.text


def test_a_certificate_of_another_ca_is_critical(tmp_path: Path, serve: list[Server]) -> None:
    topology = make_site(tmp_path)
    other = make_site(tmp_path / "other")
    server = Server(certs_of(other), "r1-proxy1")
    serve.append(server)
    port = str(server.port)
    out = run("cert", str(topology), "--node", "r1-proxy1", "-H", "127.0.0.1", "-P", port)
    assert out.state == "CRITICAL", out.stdout
    assert "not signed by the CA in" in out.text and "unable to get local issuer certificate" in out.text


def test_days_left_within_warning_and_critical(tmp_path: Path, serve: list[Server]) -> None:
    topology, port = serving(tmp_path, serve, "r1-proxy1", "tls: {days: 20}")
    args = ("cert", str(topology), "--node", "r1-proxy1", "-H", "127.0.0.1", "-P", port)
    warn = run(*args)
    assert warn.state == "WARNING", warn.stdout
    assert re.fullmatch(r"days left (19\.\d|20) outside 30:", warn.text), warn.text
    crit = run(*args, "-c", "25:")
    assert crit.state == "CRITICAL"
    assert run(*args, "-w", "10:").state == "OK"


def test_mysql_ssl_request_then_tls(tmp_path: Path, serve: list[Server]) -> None:
    topology, port = serving(tmp_path, serve, "r1-db1", mysql=True)
    out = run("cert", str(topology), "--node", "r1-db1", "-H", "127.0.0.1", "-P", port, "--protocol", "mysql")
    assert out.state == "OK", out.stdout
    request = serve[0].ssl_requests[0]
    assert request[:4] == b"\x20\x00\x00\x01"  # 32 bytes, sequence 1
    assert struct.unpack("<I", request[4:8])[0] & 0x0800  # CLIENT_SSL


def test_a_mysql_server_without_tls_is_critical(tmp_path: Path, serve: list[Server]) -> None:
    topology, port = serving(tmp_path, serve, "r1-db1", mysql=True, caps=0x0200 | 0x8000)
    out = run("cert", str(topology), "--node", "r1-db1", "-H", "127.0.0.1", "-P", port, "--protocol", "mysql")
    assert out.state == "CRITICAL"
    assert out.text == f"127.0.0.1:{port} offers no TLS (the MySQL greeting lacks CLIENT_SSL)"


def test_plain_tcp_and_closed_ports_are_critical(tmp_path: Path) -> None:
    topology = make_site(tmp_path)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    out = run("cert", str(topology), "--node", "r1-proxy1", "-H", "127.0.0.1", "-P", str(port))
    assert out.state == "CRITICAL"
    assert out.text == f"127.0.0.1:{port} unreachable: [Errno 111] Connection refused"


def test_bad_arguments_are_unknown(tmp_path: Path) -> None:
    topology = make_site(tmp_path)
    assert run("cert", "-H", "127.0.0.1", "-P", "1").text == "give --ca FILE, or a topology (its tls: CA bundle)"
    assert run("cert", str(topology), "--node", "nope").state == "UNKNOWN"
    missing = run("cert", "-H", "127.0.0.1", "-P", "1", "--ca", str(tmp_path / "none.crt"))
    assert missing.state == "UNKNOWN" and "cannot read the CA bundle" in missing.text
