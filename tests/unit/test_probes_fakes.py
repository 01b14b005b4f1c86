"""Shared helpers of the probe tests: run a probe as a monitoring server does, parse its line.

Also small fake services on 127.0.0.1 (an HTTP server in a thread, a TCP listener that
accepts and never answers) and the example topology with known secrets. The tests in
this file check the helpers themselves (the plugin-format parser).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builders import without_tls

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {
    "admin_password": "adminpw",
    "sst_password": "sstpw",
    "health_password": "healthpw",
    "verify_password": "verifypw",
    "keystone_db_password": "ksdbpw",
    "keystone_admin_password": "ksadminpw",
    "haproxy_stats_password": "statspw",
    "keepalived_password": "kapw1234",
}

STATUS = re.compile(
    r"^KGT (?P<probe>[A-Z][A-Z-]*) (?P<state>OK|WARNING|CRITICAL|UNKNOWN)"
    r"(?: - (?P<text>[^|\n]*?))?(?: \| (?P<perf>[^|\n]*))?$"
)
PERF_ITEM = re.compile(
    r"(?P<label>'[^'=]+'|[^'=\s]+)=(?P<value>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
    r"(?:;(?P<warn>[^;\s]*))?(?:;(?P<crit>[^;\s]*))?(?:;(?P<min>[^;\s]*))?(?:;(?P<max>[^;\s]*))?(?=\s|$)"
)
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


@dataclass
class Outcome:
    """One probe run: exit code, parsed status line, perfdata, seconds taken."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    probe: str
    state: str
    text: str
    perf: dict[str, dict[str, str]]


def parse_perfdata(perf: str) -> dict[str, dict[str, str]]:
    """`'label'=value[UOM];[warn];[crit];[min];[max] …` → {label: fields}; fails on anything else."""
    out: dict[str, dict[str, str]] = {}
    pos = 0
    perf = perf.strip()
    while pos < len(perf):
        match = PERF_ITEM.match(perf, pos)
        assert match, f"perfdata does not parse at {perf[pos:]!r}"
        fields = {k: v or "" for k, v in match.groupdict().items()}
        label = fields.pop("label").strip("'")
        out[label] = fields
        pos = match.end()
        while pos < len(perf) and perf[pos] == " ":
            pos += 1
    return out


def parse(stdout: str) -> tuple[str, str, str, dict[str, dict[str, str]]]:
    """The first line in plugin format: (probe, state, text, perfdata)."""
    first = stdout.split("\n", 1)[0]
    match = STATUS.match(first)
    assert match, f"not a plugin status line: {first!r}"
    return match["probe"], match["state"], match["text"] or "", parse_perfdata(match["perf"] or "")


def run(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> Outcome:
    """`python -m toolkit.cli probe ARGS` as a subprocess; asserts the plugin format and exit code."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "probe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=environment,
        check=False,
    )
    seconds = time.monotonic() - started
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    probe, state, text, perf = parse(done.stdout)
    assert done.returncode == EXIT[state], (done.returncode, done.stdout)
    return Outcome(done.returncode, done.stdout, done.stderr, seconds, probe, state, text, perf)


def example_topology(tmp_path: Path, secrets: dict[str, str] | None = None) -> Path:
    """topology/example.yaml copied to tmp_path with a complete secrets file of known values,
    without its `tls:` section: the fake servers here speak plain TCP (TLS: tests/integration)."""
    text = without_tls((ROOT / "topology" / "example.yaml").read_text()).replace("create: true", "create: false")
    path = tmp_path / "example.yaml"
    path.write_text(text)
    lines = [f"{k}: {v}" for k, v in (secrets or SECRETS).items()]
    secrets_path = tmp_path / "example.secrets.yaml"
    secrets_path.write_text("\n".join(lines) + "\n")
    secrets_path.chmod(0o600)
    return path


def password_file(tmp_path: Path, value: str, name: str = "pw") -> Path:
    """A file holding one password."""
    path = tmp_path / name
    path.write_text(value + "\n")
    return path


@contextlib.contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 in a thread; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts and never answers (a hung service)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        sock.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def have(binary: str) -> bool:
    """Whether a program is on PATH."""
    return shutil.which(binary) is not None


# --- the helpers' own tests ---------------------------------------------------------------


def test_status_line_and_perfdata_parse() -> None:
    probe, state, text, perf = parse(
        "KGT HAPROXY WARNING - galera-write of r1 served by region r2 | 'galera-write_up'=1;;1:;0;3 "
        "repl_latency=0.0012s;;;0 cert_failures=0c;;;0 cluster_size=3"
    )
    assert (probe, state) == ("HAPROXY", "WARNING")
    assert text.startswith("galera-write of r1")
    assert perf["galera-write_up"] == {"value": "1", "uom": "", "warn": "", "crit": "1:", "min": "0", "max": "3"}
    assert perf["repl_latency"]["uom"] == "s"
    assert perf["cluster_size"]["value"] == "3"


def test_bad_perfdata_is_rejected() -> None:
    import pytest

    for bad in ("label=", "a b=1", "x=1;;;;;;"):
        with pytest.raises(AssertionError):
            parse_perfdata(bad)
