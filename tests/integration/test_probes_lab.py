"""Every probe run as a monitoring server runs it, against the live lab, healthy and faulted."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.integration.conftest import Lab
from toolkit.lab import services

pytestmark = pytest.mark.integration

STATUS = re.compile(
    r"^KGT (?P<probe>[A-Z]+) (?P<state>OK|WARNING|CRITICAL|UNKNOWN) - (?P<text>[^|]*?)"
    r"(?: \| (?P<perf>.*))?$"
)
PERF = re.compile(r"^('[^']+'|[^'= ]+)=-?[0-9.]+[a-zA-Z%]*(;[-0-9.:~@]*){0,4}$")
CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def probe(lab: Lab, *args: str) -> tuple[int, str, str]:
    """Run `kgt probe ARGS`; check the plugin format; return (exit code, state, first line)."""
    done = lab.kgt("probe", *args, timeout=60)
    line = done.stdout.splitlines()[0] if done.stdout else ""
    match = STATUS.match(line)
    assert match, f"not a plugin line: {line!r} (stderr: {done.stderr!r})"
    assert CODES[match["state"]] == done.returncode, (line, done.returncode)
    for item in (match["perf"] or "").split():
        assert PERF.match(item), f"perfdata does not parse: {item!r} in {line!r}"
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, match["state"], line


def until(lab: Lab, state: str, args: tuple[str, ...], timeout: float, extra: Callable[[str], bool] = bool) -> str:
    """Poll a probe until it reports `state` (and `extra(line)`); return that line."""
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        _, seen, line = probe(lab, *args)
        if seen == state and extra(line):
            return line
        time.sleep(1)
    raise AssertionError(f"probe {args[0]} never {state} within {timeout}s; last: {line}")


def healthy_probes(lab: Lab) -> list[tuple[str, ...]]:
    t = str(lab.topology_path)
    dns_server = str(lab.topology.with_role("dns")[0].address)
    return [
        ("galera", t, "--node", "r1-db1"),
        ("cluster", t),
        ("haproxy", t, "--proxy", "r1-proxy1"),
        ("keystone", t, "--issue-region", "r1"),
        ("dns", t, "--server", dns_server),
    ]


def test_every_probe_is_ok_on_the_healthy_lab(lab: Lab) -> None:
    for args in healthy_probes(lab):
        code, _state, line = probe(lab, *args)
        assert code == 0, line
        assert "|" in line, f"no perfdata: {line}"


def test_vip_probe_on_each_proxy_as_nrpe_would(lab: Lab) -> None:
    for host in lab.topology.with_role("keepalived"):
        done = lab.host(host.name).run("kgt probe vip /etc/kgt/topology.yaml", timeout=60)
        assert done.rc == 0, done.stdout + done.stderr
        assert STATUS.match(done.stdout.splitlines()[0])


def observations(lab: Lab) -> list[str]:
    out = []
    for host in lab.topology.with_role("keepalived"):
        out += ["--observe", f"{host.name}={','.join(services.held_vips(lab.host(host.name)))}"]
    return out


def test_galera_host_forced_unhealthy_makes_haproxy_warn_naming_the_serving_region(lab: Lab) -> None:
    t = str(lab.topology_path)
    r1 = lab.host("r1-db1")
    r1.run("touch /etc/kgt/maintenance")
    try:
        line = until(
            lab,
            "WARNING",
            ("haproxy", t, "--proxy", "r1-proxy1"),
            15,
            lambda text: "galera-write" in text,
        )
        assert "served by region r2" in line
    finally:
        r1.run("rm -f /etc/kgt/maintenance")
    until(lab, "OK", ("haproxy", t, "--proxy", "r1-proxy1"), 20)


def test_keystone_stopped_in_r1_warns_on_haproxy_and_keystone_stays_ok(lab: Lab) -> None:
    t = str(lab.topology_path)
    host = lab.topology.host("r1-db1")
    lab.services(host.name).stop("keystone")
    try:
        line = until(lab, "WARNING", ("haproxy", t, "--proxy", "r1-proxy1"), 15, lambda text: "keystone" in text)
        assert "keystone-api of r1 served by region" in line
        code, _, line = probe(lab, "keystone", t, "--issue-region", "r1")
        assert code == 0, line
    finally:
        lab.services(host.name).start("keystone")
    until(lab, "OK", ("haproxy", t, "--proxy", "r1-proxy1"), 60)


def test_other_fernet_keys_make_keystone_critical_naming_the_region(lab: Lab) -> None:
    t = str(lab.topology_path)
    h = lab.host("r3-db1")
    h.run("mv /etc/keystone/fernet-keys /etc/keystone/fernet-keys.kgt-saved")
    try:
        services.keystone_manage(h, "fernet_setup --keystone-user root --keystone-group root")
        _code, state, line = probe(lab, "keystone", t, "--issue-region", "r1")
        assert state == "CRITICAL", line
        assert "r3" in line.split("|")[0] and "r2" not in line.split("|")[0]
    finally:
        h.run("rm -rf /etc/keystone/fernet-keys && mv /etc/keystone/fernet-keys.kgt-saved /etc/keystone/fernet-keys")
    assert probe(lab, "keystone", t, "--issue-region", "r1")[0] == 0


def test_r3_isolated_cluster_degrades_and_r3_galera_is_critical(lab: Lab) -> None:
    t = str(lab.topology_path)
    assert lab.kgt("lab", "wan", "--cut", "r3").returncode == 0
    try:
        # Right after the cut r3 may still think it is Primary (a view change in progress).
        line = until(lab, "WARNING", ("cluster", t), 40, lambda text: "r3-db1 non-primary" in text)
        _, state, line = probe(lab, "cluster", t, "-c", "0")
        assert state == "CRITICAL", line
        _, state, line = probe(lab, "galera", t, "--node", "r3-db1")
        assert state == "CRITICAL" and "non-Primary" in line, line
        _, state, line = probe(lab, "galera", t, "--node", "r1-db1")
        assert state in ("OK", "WARNING"), line  # Primary; size 2 of 3 may warn
    finally:
        assert lab.kgt("lab", "wan", "--clear").returncode == 0
    until(lab, "OK", ("cluster", t), 40)


def test_vip_held_by_no_proxy_is_critical(lab: Lab) -> None:
    t = str(lab.topology_path)
    proxies = lab.topology.region("r1").with_role("keepalived")
    for host in proxies:
        lab.host(host.name).stop("keepalived")
    try:
        _, state, line = probe(lab, "vip", t, "--all", *observations(lab))
        assert state == "CRITICAL" and "r1-vip1" in line, line
    finally:
        for host in proxies:
            lab.services(host.name).start("keepalived")
    for vip in lab.topology.region("r1").vips:
        deadline = time.monotonic() + 15
        while str(vip.address) not in services.held_vips(lab.host(vip.master)):
            assert time.monotonic() < deadline, f"{vip.name} not back on {vip.master}"
            time.sleep(0.5)
    assert probe(lab, "vip", t, "--all", *observations(lab))[1] == "OK"


def test_host_that_does_not_answer_is_critical_within_the_timeout(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    password = tmp_path / "pw"
    password.write_text(lab.secrets["health_password"] + "\n")
    started = time.monotonic()
    _code, state, line = probe(lab, "galera", "-H", "10.213.9.9", "--password-file", str(password), "-t", "3")
    assert time.monotonic() - started < 3 + 2.5
    assert state == "CRITICAL", line


def test_wrong_credentials_and_bad_arguments_are_unknown(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    _, state, line = probe(lab, "galera", "-H", "10.213.1.11", "--password-file", str(wrong))
    assert state == "UNKNOWN", line
    _, state, line = probe(lab, "galera", "-H", "10.213.1.11", "--no-such-option")
    assert state == "UNKNOWN", line
