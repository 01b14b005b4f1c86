"""The WAN router loop (toolkit/lab/wanrouter/loop.py), with a datagram socket pair as its TUN device.

A ``SOCK_DGRAM`` socket pair keeps packet boundaries as a TUN device does, so the loop
reads, shapes and writes back real packets without privileges; the test holds the
other end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.lab.wanrouter.config import parse_config, write_config
from toolkit.lab.wanrouter.loop import Router, signal_pipe
from toolkit.lab.wanrouter.shaper import Shaper

REGIONS = {"r1": "10.213.1.0/24", "r2": "10.213.2.0/24"}


def ipv4(src: str, dst: str, payload: bytes = b"") -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return header + payload


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A Router between a socket pair, with a wake-up pipe the test writes signal numbers to."""

    def __init__(self, tmp_path: Path, rules: list[dict[str, object]]) -> None:
        self.config_path = tmp_path / "wan.json"
        write_config(self.config_path, {"regions": REGIONS, "rules": rules})
        self.stats_path = tmp_path / "stats.json"
        self.clock = Clock()
        shaper = Shaper(parse_config(self.config_path.read_text()))
        self.router = Router(self.config_path, shaper, self.stats_path, self.clock)
        self.tun, self.peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tun.setblocking(False)
        self.peer.setblocking(False)
        self.rpipe, self.wpipe = os.pipe()

    def serve(self, *signums: int) -> int:
        """One pass of the loop (then SIGTERM ends it), after the given signals."""
        self.router.stopping = False
        os.write(self.wpipe, bytes([*signums, signal.SIGTERM]))
        return self.router.serve(self.tun.fileno(), self.rpipe)

    def received(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.peer.recv(65536))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.tun.close()
        self.peer.close()
        os.close(self.rpipe)
        os.close(self.wpipe)


@pytest.fixture
def harness(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = Harness(tmp_path, getattr(request, "param", []))
    yield h
    h.close()


def test_local_traffic_goes_straight_back_and_sigterm_stops(harness: Harness) -> None:
    packet = ipv4("10.213.1.5", "10.213.1.6")
    harness.peer.send(packet)
    assert harness.serve() == 0
    assert harness.received() == [packet]
    assert harness.router.shaper.stats.passed_local == 1


@pytest.mark.parametrize("harness", [[{"between": None, "delay_ms": 50}]], indirect=True)
def test_delayed_traffic_leaves_when_due(harness: Harness) -> None:
    packet = ipv4("10.213.1.5", "10.213.2.6", b"x")
    harness.peer.send(packet)
    assert harness.serve() == 0
    assert harness.received() == []
    harness.clock.now = 0.049
    harness.serve()
    assert harness.received() == []
    harness.clock.now = 0.050
    harness.serve()
    assert harness.received() == [packet]


def test_sighup_reloads_the_config_at_the_next_pass(harness: Harness) -> None:
    harness.serve()  # the first pass looks at the file: unchanged
    write_config(harness.config_path, {"regions": REGIONS, "rules": [{"between": None, "cut": True}]})
    harness.clock.now = 0.01
    harness.serve()
    assert harness.router.reloads == 0  # not looked at again before 0.1 ...
    harness.serve(signal.SIGHUP)  # ... unless SIGHUP says so (at the next pass)
    assert harness.router.reloads == 0
    harness.serve()
    assert harness.router.reloads == 1
    harness.peer.send(ipv4("10.213.1.5", "10.213.2.6"))
    harness.serve()
    assert harness.received() == [] and harness.router.shaper.stats.dropped_cut == 1


def test_sigusr1_logs_the_counters(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.serve(signal.SIGUSR1)
    err = capsys.readouterr().err
    assert err.startswith("kgt-wan: stats {")
    assert err.rstrip().endswith("queued=0 write_errors=0")


def test_a_failed_write_is_counted_not_fatal(harness: Harness) -> None:
    harness.peer.send(ipv4("10.213.1.5", "10.213.1.6"))
    harness.peer.close()  # nobody to write back to
    assert harness.serve() == 0
    assert harness.router.write_errors == 1


def test_stats_file(harness: Harness) -> None:
    harness.peer.send(ipv4("10.213.1.5", "10.213.1.6"))
    harness.serve()
    harness.router.write_stats(harness.stats_path)
    stats = json.loads(harness.stats_path.read_text())
    assert stats["passed_local"] == 1 and stats["queued"] == 0 and stats["reloads"] == 0
    assert stats["config"] == "2 regions, all pairs clear" and stats["pid"] == os.getpid()
    assert [p.name for p in harness.stats_path.parent.iterdir() if p.name.startswith(".")] == []


def test_signal_pipe_turns_signals_into_bytes_and_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with signal_pipe([signal.SIGUSR1]) as rpipe:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert os.read(rpipe, 64) == bytes([signal.SIGUSR1])
    assert signal.getsignal(signal.SIGUSR1) is before
    assert signal.set_wakeup_fd(-1) == -1  # no wake-up fd left behind
