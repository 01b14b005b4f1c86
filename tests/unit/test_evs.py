"""EVS timeouts: the limits kgt validate enforces are exactly the ones Galera enforces.

The oracle is the real Galera library: `garbd` (Debian's galera-arbitrator-4, installed
by CI) opens gcomm with the rendered EVS options and either logs "EVS version" (options
accepted, it goes on to look for peers) or refuses with "out of range". The only address
it touches is loopback. Skipped, saying why, only when garbd is absent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from builders import topology_data, write_topology

from toolkit.errors import TopologyError
from toolkit.render import context as ctx
from toolkit.topology import evs, load, load_with_warnings
from toolkit.topology.loader import parse_document, read_yaml
from toolkit.topology.model import Topology

GARBD = shutil.which("garbd") or ("/usr/bin/garbd" if Path("/usr/bin/garbd").exists() else None)

# Settings under `defaults: galera:` — edges of every limit, on both sides.
CASES: dict[str, dict[str, Any]] = {
    "stock": {},
    "suspect-2s-keepalive-derived-1s": {"suspect_timeout": "2s"},
    "suspect-3s-keepalive-1s-exactly-a-third": {"suspect_timeout": "3s"},
    "suspect-0.9s-keepalive-0.3s": {"suspect_timeout": "900ms", "keepalive_period": "300ms"},
    "suspect-1s-keepalive-0.3s": {"suspect_timeout": "1s", "keepalive_period": "300ms"},
    "install-above-inactive": {"install_timeout": "16s"},
    "install-equals-inactive": {"install_timeout": "15s"},
    "install-below-keepalive": {"keepalive_period": "2s", "suspect_timeout": "10s", "install_timeout": "1900ms"},
    "install-equals-keepalive": {"keepalive_period": "2s", "suspect_timeout": "10s", "install_timeout": "2s"},
    "user-window-above-send-window": {"send_window": 64, "user_send_window": 128},
    "send-window-alone-below-default": {"send_window": 64},
    "wan-tuned": {
        "keepalive_period": "3s",
        "suspect_timeout": "30s",
        "inactive_timeout": "90s",
        "install_timeout": "45s",
    },
}


def write(directory: Path, galera: dict[str, Any], rtt: str = "50ms") -> Path:
    """Three one-node regions with `galera` under defaults."""
    return write_topology(directory, topology_data(per_region=["galera"], vips=0, rtt=rtt, defaults={"galera": galera}))


def unvalidated(directory: Path, galera: dict[str, Any], rtt: str = "50ms") -> Topology:
    """The model of a topology without the semantic checks (to render what Galera would get)."""
    path = write(directory, galera, rtt)
    data, lines = read_yaml(path)
    return Topology.from_document(parse_document(data, lines), path)


def kgt_says_error(directory: Path, galera: dict[str, Any]) -> bool:
    try:
        load(write(directory, galera))
    except TopologyError:
        return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def garbd_verdict(
    options: list[tuple[str, str]], workdir: Path, timeout: float, seen: list[str] | None = None
) -> bool | None:
    """True: gcomm logged "EVS version" (accepted); False: "out of range"; None: no verdict.

    Every line garbd printed is appended to `seen` (for the message when no run gives a verdict)."""
    assert GARBD
    listen = f"tcp://127.0.0.1:{free_port()}"
    text = "; ".join([f"gmcast.listen_addr={listen}", *(f"{k}={v}" for k, v in options)])
    proc = subprocess.Popen(
        [GARBD, "--address", f"gcomm://127.0.0.1:{free_port()}", "--group", "kgt-evs-oracle", "--options", text],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=workdir,  # it writes gvwstate.dat there
    )
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if seen is not None:
                seen.append(line.rstrip())
            if "out of range" in line:
                return False
            if "EVS version" in line:
                return True
            if time.monotonic() > deadline:
                break
        return None
    finally:
        proc.kill()  # our own child, by handle
        proc.wait(timeout=10)


def garbd_accepts(options: list[tuple[str, str]], workdir: Path, timeout: float = 15.0) -> bool:
    """Whether Galera's gcomm accepts `options`.

    garbd 26.4 sometimes dies before reading any option with "Failed to set thread
    schedparams … No such process" (a start-up race in gcomm's thread set-up, seen on a busy
    2-core machine; also "Failed to read thread schedparams"); that run gave no verdict, so it is
    asked again, a bounded number of times, waiting a little longer each time.
    """
    seen: list[str] = []
    for attempt in range(10):
        seen.clear()
        verdict = garbd_verdict(options, workdir, timeout, seen)
        if verdict is not None:
            return verdict
        time.sleep(0.2 * (attempt + 1))  # runs in a row hit the race while the machine stays busy
    last = "\n".join(seen[-15:])
    raise AssertionError(f"garbd gave no verdict in 10 runs on {options}; the last run printed:\n{last}")


@pytest.mark.skipif(GARBD is None, reason="garbd (galera-arbitrator-4) is not installed")
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_validate_refuses_exactly_what_galera_refuses(tmp_path: Path, case: str) -> None:
    galera = CASES[case]
    topology = unvalidated(tmp_path, galera)
    host = topology.galera_nodes[0]
    options = [(k, v) for k, v in ctx.provider_options(topology, host) if k.startswith("evs.")]
    assert kgt_says_error(tmp_path, galera) == (not garbd_accepts(options, tmp_path)), options


def test_cases_cover_both_verdicts(tmp_path: Path) -> None:
    verdicts = {kgt_says_error(tmp_path / name, galera) for name, galera in CASES.items()}
    assert verdicts == {True, False}


@pytest.mark.parametrize("rtt_ms", [0, 1, 10, 50, 120, 250, 400, 700, 1000, 2000])
def test_derived_timeouts_never_break_a_limit(tmp_path: Path, rtt_ms: int) -> None:
    topology = unvalidated(tmp_path, {}, rtt=f"{rtt_ms}ms")
    assert evs.problems(topology, topology.galera_nodes[0]) == []


def messages(tmp_path: Path, galera: dict[str, Any], rtt: str = "50ms") -> list[str]:
    path = write(tmp_path, galera, rtt)
    try:
        return [str(p) for p in load_with_warnings(path)[1]]
    except TopologyError as exc:
        return [str(p) for p in exc.problems]


def test_an_error_names_both_values_the_limit_and_the_line_that_sets_it(tmp_path: Path) -> None:
    found = messages(tmp_path, {"suspect_timeout": "2s"})
    assert len(found) == 1, found  # reported once, not once per host
    text = (tmp_path / "topology.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, start=1) if "suspect_timeout" in t)
    assert found[0].startswith(f"{tmp_path / 'topology.yaml'}:{line}: defaults.galera.suspect_timeout: ")
    assert "evs.keepalive_period 1s is more than a third of evs.suspect_timeout 2s" in found[0]
    assert "Galera refuses to start" in found[0]


def test_inactive_below_suspect_is_a_warning(tmp_path: Path) -> None:
    found = messages(tmp_path, {"suspect_timeout": "20s", "inactive_timeout": "15s", "install_timeout": "10s"})
    assert any("warning: " in m and "inactive_timeout 15s is below evs.suspect_timeout 20s" in m for m in found)


def test_explicit_suspect_under_ten_rtts_is_a_warning(tmp_path: Path) -> None:
    found = messages(tmp_path, {"keepalive_period": "1s", "suspect_timeout": "6s"}, rtt="800ms")
    assert any("warning: " in m and "under 10 × the worst WAN RTT (800 ms)" in m for m in found), found
    fine = messages(tmp_path / "fine", {"keepalive_period": "1s", "suspect_timeout": "6s"}, rtt="500ms")
    assert not [m for m in fine if "RTT" in m]


def test_unset_user_send_window_follows_send_window(tmp_path: Path) -> None:
    topology = unvalidated(tmp_path, {"send_window": 64})
    options = dict(ctx.provider_options(topology, topology.galera_nodes[0]))
    assert (options["evs.send_window"], options["evs.user_send_window"]) == ("64", "64")
