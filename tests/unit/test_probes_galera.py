"""`kgt probe galera` and the probe edge: bad arguments, deadlines, unreachable nodes, imports.

A real Galera node is only in tests/integration/test_probes_local.py (a fake MySQL server
would test the fake); here: everything that needs no database, plus the evaluation of
wsrep status values through nagiosplugin in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_probes_fakes import ROOT, example_topology, free_port, password_file, run, silent_listener

from toolkit.probes import galera, runtime


def one_line(out: object) -> None:
    assert out.stdout.count("\n") == 1, out.stdout  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["galera", "-H", "127.0.0.1", "-w", "abc"], "not a Nagios range: 'abc'"),
        (["galera", "-H", "127.0.0.1", "-c", "5:1"], "not a Nagios range: '5:1'"),
        (["galera", "--bogus"], "No such option '--bogus'"),
        (["galera", "-P", "notaport"], "'notaport' is not a valid integer"),
        (["galera", "-t", "-1"], "-1"),
        (["cluster"], "Missing argument 'TOPOLOGY'"),
        (["--bogus"], "No such option '--bogus'"),
    ],
)
def test_bad_arguments_are_one_unknown_line(args: list[str], fragment: str) -> None:
    out = run(*args)
    assert out.state == "UNKNOWN" and out.code == 3, out.stdout
    assert fragment in out.text, out.text
    one_line(out)


def test_bad_topology_is_unknown_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("name: x\nregions: 7\n")
    out = run("galera", str(bad), "--node", "x")
    assert out.state == "UNKNOWN", out.stdout
    assert str(bad) in out.text
    one_line(out)


def test_missing_secrets_file_is_unknown(tmp_path: Path) -> None:
    topology = example_topology(tmp_path)
    (tmp_path / "example.secrets.yaml").unlink()
    out = run("galera", str(topology), "--node", "r1-db1")
    assert out.state == "UNKNOWN", out.stdout
    assert "secrets file not found" in out.text


def test_unknown_node_is_unknown(tmp_path: Path) -> None:
    out = run("galera", str(example_topology(tmp_path)), "--node", "r9-db1")
    assert out.state == "UNKNOWN", out.stdout
    assert "no host 'r9-db1'" in out.text and "r1-db1" in out.text


def test_no_password_is_unknown() -> None:
    out = run("galera", "-H", "127.0.0.1")
    assert out.state == "UNKNOWN", out.stdout
    assert "no password" in out.text


def test_unreachable_node_is_critical(tmp_path: Path) -> None:
    port = free_port()
    out = run("galera", "-H", "127.0.0.1", "-P", str(port), "--password-file", str(password_file(tmp_path, "x")))
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith(f"127.0.0.1:{port} unreachable")
    one_line(out)


def test_node_from_topology_is_named_in_the_line(tmp_path: Path) -> None:
    port = free_port()
    out = run("galera", str(example_topology(tmp_path)), "--node", "r2-db1", "-H", "127.0.0.1", "-P", str(port))
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith(f"r2-db1 (127.0.0.1:{port}) unreachable")


@pytest.mark.parametrize("seconds", [1, 2.5])
def test_timeout_is_honoured_against_a_hung_server(tmp_path: Path, seconds: float) -> None:
    with silent_listener() as port:
        out = run(
            "galera",
            "-H",
            "127.0.0.1",
            "-P",
            str(port),
            "-t",
            str(seconds),
            "--password-file",
            str(password_file(tmp_path, "x")),
        )
    assert out.state in ("CRITICAL", "UNKNOWN")
    assert out.seconds < seconds + 1 + 1.5, out.seconds  # timeout + 1 s, plus interpreter start-up


def test_help_is_not_an_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "probe", "galera", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0
    assert "--warning" in done.stdout and "--fc-critical" in done.stdout


HEAVY = ("keystoneauth1", "dns", "jinja2", "pydantic", "yaml", "requests", "haproxystats", "cryptography")


def test_galera_probe_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from toolkit.cli import main\n"
        f"rc = main(['probe', 'galera', '-H', '127.0.0.1', '-P', '{free_port()}', "
        f"'--password-file', {str(password_file(tmp_path, 'x'))!r}])\n"
        f"print(json.dumps([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("KGT GALERA CRITICAL"), done.stdout + done.stderr
    assert json.loads(lines[-1]) == []


# --- evaluation of wsrep status, in-process ------------------------------------------------

SYNCED = {
    "wsrep_cluster_status": "Primary",
    "wsrep_local_state": "4",
    "wsrep_local_state_comment": "Synced",
    "wsrep_ready": "ON",
    "wsrep_connected": "ON",
    "wsrep_cluster_size": "3",
    "wsrep_flow_control_paused": "0.25",
    "wsrep_local_recv_queue": "2",
    "wsrep_local_send_queue": "1",
    "wsrep_evs_repl_latency": "0.0001/0.0025/0.01/0.001/40",
    "wsrep_local_cert_failures": "7",
}


class Canned(galera.Node):
    def __init__(self, status: dict[str, str]) -> None:
        super().__init__("r1-db1", "127.0.0.1", 3306, "u", "p", runtime.Deadline(5))
        self.canned = status

    def status(self) -> dict[str, str]:
        return self.canned


def evaluate(status: dict[str, str], **thresholds: str | None) -> tuple[str, int]:
    check = galera.build(
        label="r1-db1",
        host="127.0.0.1",
        port=3306,
        user="u",
        password="p",
        deadline=runtime.Deadline(5),
        warning=thresholds.get("warning"),
        critical=thresholds.get("critical"),
        fc_warning=thresholds.get("fc_warning"),
        fc_critical=thresholds.get("fc_critical"),
    )
    check.resources = [Canned(status)]
    check()
    text, code = runtime.render(check)
    return text.strip(), code


def test_synced_primary_is_ok_with_every_perfdata_label() -> None:
    text, code = evaluate(SYNCED)
    assert code == 0
    assert text.startswith("KGT GALERA OK - r1-db1 Primary, Synced, ready, connected; cluster size 3 | ")
    for item in (
        "cluster_size=3;;;0",
        "local_state=4;;;0;4",
        "flow_control_paused=0.25;;;0;1",
        "recv_queue=2;;;0",
        "send_queue=1;;;0",
        "repl_latency=0.0025s;;;0",
        "cert_failures=7c;;;0",
    ):
        assert item in text


@pytest.mark.parametrize(
    "status, code, fragment",
    [
        (
            {"wsrep_cluster_status": "non-Primary", "wsrep_ready": "OFF"},
            2,
            "r1-db1 is non-Primary (wsrep_cluster_status), not Primary",
        ),
        ({"wsrep_cluster_status": "Disconnected", "wsrep_connected": "OFF"}, 2, "r1-db1 is Disconnected"),
        (
            {"wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"},
            1,
            "r1-db1 is Donor/Desynced (wsrep_local_state=2)",
        ),
        ({"wsrep_local_state": "1", "wsrep_local_state_comment": "Joining"}, 2, "r1-db1 is Joining"),
        ({"wsrep_ready": "OFF"}, 2, "r1-db1 not ready"),
    ],
)
def test_states(status: dict[str, str], code: int, fragment: str) -> None:
    text, got = evaluate({**SYNCED, **status})
    assert got == code, text
    assert fragment in text.split(" | ")[0]


def test_non_primary_is_named_first() -> None:
    text, _ = evaluate(
        {**SYNCED, "wsrep_cluster_status": "non-Primary", "wsrep_ready": "OFF", "wsrep_cluster_size": "1"}, warning="3:"
    )
    assert text.startswith("KGT GALERA CRITICAL - r1-db1 is non-Primary")


def test_thresholds_on_cluster_size_and_flow_control() -> None:
    text, code = evaluate(SYNCED, warning="4:", fc_critical="0.2")
    assert code == 2
    assert "flow control paused 0.25 outside 0.2" in text
    assert "cluster size 3 outside 4:" in text
    assert "cluster_size=3;4:;;0" in text


def test_wsrep_off_is_critical() -> None:
    text, code = evaluate({"version": "10.11"})
    assert code == 2 and "wsrep is off" in text


def test_deadline_budget_leaves_a_margin() -> None:
    deadline = runtime.Deadline(2.0)
    assert 1.5 < deadline.budget() < 1.85
    assert runtime.Deadline(0.1).budget() <= 0.09


def test_perfdata_values_never_use_exponents() -> None:
    from toolkit.probes.runtime import plain_number

    assert plain_number("repl_latency=3.473e-06s;;;0") == "repl_latency=0.000003473s;;;0"
    assert plain_number("'a-b'=2E+3;1;2") == "'a-b'=2000;1;2"
    assert plain_number("cluster_size=3;3:;;0") == "cluster_size=3;3:;;0"


def test_legacy_topology_option_still_works_with_a_warning(tmp_path: Path) -> None:
    topology = str(example_topology(tmp_path))
    new = run("galera", topology, "--node", "r9-db1")
    old = run("galera", "--topology", topology, "--node", "r9-db1")
    assert old.stdout == new.stdout and old.code == new.code == 3
    assert "--topology is deprecated" in old.stderr and "first argument" in old.stderr
    assert new.stderr == ""


def test_topology_given_twice_is_one_unknown_line(tmp_path: Path) -> None:
    topology = str(example_topology(tmp_path))
    out = run("vip", topology, "--topology", topology)
    assert out.state == "UNKNOWN" and out.code == 3
    assert "give the topology once" in out.text
    one_line(out)
