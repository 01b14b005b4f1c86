"""`kgt probe dns` against a tiny DNS server on 127.0.0.1 built with dnspython (UDP)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from test_probes_fakes import example_topology, run

# What topology/example.yaml says (toolkit.render.zone.endpoint_names).
R1, R2, R3 = ["10.213.1.100", "10.213.1.101"], ["10.213.2.100", "10.213.2.101"], ["10.213.3.100", "10.213.3.101"]


def right_records() -> dict[str, list[str]]:
    out = {"keystone.kgt.example.": R1 + R2 + R3}
    for region, vips in (("r1", R1), ("r2", R2), ("r3", R3)):
        for name in (region, f"keystone.{region}", f"db.{region}"):
            out[f"{name}.kgt.example."] = list(vips)
    return out


class FakeDns:
    """A UDP DNS server answering A queries from `records`; `mode` = answer | silent | servfail."""

    def __init__(self) -> None:
        self.records = right_records()
        self.mode = "answer"
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(wire)
            name = query.question[0].name.to_text().lower()
            self.queries.append(name)
            if self.mode == "silent":
                continue
            response = dns.message.make_response(query)
            if self.mode == "servfail":
                response.set_rcode(dns.rcode.SERVFAIL)
            elif name not in self.records:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif query.question[0].rdtype == dns.rdatatype.A and self.records[name]:
                response.answer.append(
                    dns.rrset.from_text_list(name, 60, dns.rdataclass.IN, dns.rdatatype.A, self.records[name])
                )
            self.sock.sendto(response.to_wire(), peer)


@pytest.fixture
def server() -> Iterator[FakeDns]:
    fake = FakeDns()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.stop.set()
        fake.thread.join(2)
        fake.sock.close()


def probe(tmp_path: Path, fake: FakeDns, *extra: str) -> object:
    return run("dns", str(example_topology(tmp_path)), "--server", "127.0.0.1", "-p", str(fake.port), *extra)


def test_right_records_are_ok(tmp_path: Path, server: FakeDns) -> None:
    out = probe(tmp_path, server)
    assert out.state == "OK", out.stdout
    assert out.text.startswith("10 endpoint names resolve to their VIPs")
    assert sorted(set(server.queries)) == sorted(right_records())
    assert out.perf["names_ok"]["value"] == "10"
    assert out.perf["names_ok"]["max"] == "10"
    assert out.perf["resolve_time"]["uom"] == "s"


def test_missing_address_is_critical(tmp_path: Path, server: FakeDns) -> None:
    server.records["keystone.r2.kgt.example."] = ["10.213.2.100"]
    out = probe(tmp_path, server)
    assert out.state == "CRITICAL", out.stdout
    assert out.text == "keystone.r2.kgt.example.: missing 10.213.2.101"
    assert out.perf["names_ok"]["value"] == "9"


def test_extra_address_is_critical(tmp_path: Path, server: FakeDns) -> None:
    server.records["db.r1.kgt.example."] = [*R1, "10.213.9.9"]
    out = probe(tmp_path, server)
    assert out.state == "CRITICAL", out.stdout
    assert out.text == "db.r1.kgt.example.: extra 10.213.9.9"


def test_missing_name_is_critical(tmp_path: Path, server: FakeDns) -> None:
    del server.records["keystone.kgt.example."]
    out = probe(tmp_path, server)
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith("keystone.kgt.example. does not exist (NXDOMAIN) (expected 10.213.1.100,")


def test_servfail_is_critical(tmp_path: Path, server: FakeDns) -> None:
    server.mode = "servfail"
    out = probe(tmp_path, server)
    assert out.state == "CRITICAL", out.stdout
    assert "answered SERVFAIL" in out.text


def test_timeout_is_honoured_against_a_silent_server(tmp_path: Path, server: FakeDns) -> None:
    server.mode = "silent"
    out = probe(tmp_path, server, "-t", "2")
    assert out.state in ("CRITICAL", "UNKNOWN")
    assert "did not answer" in out.text or "no result within" in out.text
    assert out.seconds < 2 + 1 + 1.5, out.seconds


def test_plain_expect_without_topology(tmp_path: Path, server: FakeDns) -> None:
    out = run(
        "dns",
        "--expect",
        "r3.kgt.example=10.213.3.101,10.213.3.100",
        "--server",
        "127.0.0.1",
        "-p",
        str(server.port),
        "-c",
        "5",
    )
    assert out.state == "OK", out.stdout
    assert out.perf["resolve_time"]["crit"] == "5"


def test_nothing_to_check_is_unknown() -> None:
    out = run("dns", "--server", "127.0.0.1")
    assert out.state == "UNKNOWN", out.stdout
    assert "nothing to check" in out.text
