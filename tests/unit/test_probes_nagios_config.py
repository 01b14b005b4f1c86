"""`kgt probe nagios-config`: object definitions for every host and region of a topology."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_probes_fakes import ROOT, example_topology, have

BLOCK = re.compile(r"^define (\w+) \{\n((?:    \S+ +.+\n)+)\}$", re.M)


def config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "probe", "nagios-config", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def blocks(text: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for kind, body in BLOCK.findall(text):
        fields = dict(line.strip().split(None, 1) for line in body.splitlines())
        out.append((kind, fields))
    assert text.count("define ") == len(out), "a define block did not parse"
    return out


def test_every_host_and_region_has_its_services(tmp_path: Path) -> None:
    topology = example_topology(tmp_path)
    done = config(str(topology), "--kgt", "/opt/kgt/bin/kgt", "--topology-path", "/etc/kgt/site.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    defs = blocks(done.stdout)
    commands = {f["command_name"]: f["command_line"] for k, f in defs if k == "command"}
    assert commands["kgt_galera"] == ("/opt/kgt/bin/kgt probe galera /etc/kgt/site.yaml --node $HOSTNAME$ -t 10")
    hosts = {f["host_name"]: f for k, f in defs if k == "host" and "register" not in f}
    assert set(hosts) == {
        "r1-db1",
        "r1-proxy1",
        "r1-proxy2",
        "r2-db1",
        "r2-proxy1",
        "r2-proxy2",
        "r3-db1",
        "r3-proxy1",
        "r3-proxy2",
        "kgt-kgt-example",
    }
    assert hosts["r2-proxy1"]["address"] == "10.213.2.21" and hosts["r2-proxy1"]["hostgroups"] == "kgt-r2"
    services = {(f["host_name"], f["service_description"]): f["check_command"] for k, f in defs if k == "service"}
    for n in (1, 2, 3):
        assert services[(f"r{n}-db1", "galera")] == "kgt_galera"
        for p in (1, 2):
            assert services[(f"r{n}-proxy{p}", "haproxy")] == "kgt_haproxy"
            assert services[(f"r{n}-proxy{p}", "vip")] == "kgt_nrpe!kgt_vip"
        assert services[("kgt-kgt-example", f"keystone from r{n}")] == f"kgt_keystone!r{n}!1!5"
    assert services[("r1-proxy1", "dns")] == "kgt_dns"
    assert services[("kgt-kgt-example", "galera cluster")] == "kgt_cluster!0!1"
    every_command = {c.split("!")[0] for c in services.values()}
    assert every_command <= set(commands)
    assert "command[kgt_vip]=/opt/kgt/bin/kgt probe vip /etc/kgt/site.yaml --host r3-proxy2" in done.stdout


def test_no_hosts_leaves_host_definitions_out(tmp_path: Path) -> None:
    done = config(str(example_topology(tmp_path)), "--no-hosts")
    kinds = {k for k, _ in blocks(done.stdout)}
    assert kinds == {"command", "service"}


def test_bad_topology_is_one_unknown_line(tmp_path: Path) -> None:
    done = config(str(tmp_path / "missing.yaml"))
    assert done.returncode == 3
    assert done.stdout.startswith("KGT NAGIOS-CONFIG UNKNOWN - ")
    assert done.stdout.count("\n") == 1


NAGIOS_CFG = """log_file={d}/nagios.log
cfg_file=/etc/nagios4/objects/commands.cfg
cfg_file=/etc/nagios4/objects/contacts.cfg
cfg_file=/etc/nagios4/objects/timeperiods.cfg
cfg_file=/etc/nagios4/objects/templates.cfg
cfg_file={d}/kgt.cfg
resource_file={d}/resource.cfg
status_file={d}/status.dat
check_result_path={d}
lock_file={d}/nagios.lock
temp_file={d}/nagios.tmp
object_cache_file={d}/objects.cache
precached_object_file={d}/objects.precache
illegal_macro_output_chars=`~$&|'"<>
"""


@pytest.mark.skipif(not have("nagios4"), reason="nagios4 not installed (apt-get install nagios4-core)")
def test_real_nagios_accepts_the_definitions(tmp_path: Path) -> None:
    done = config(str(example_topology(tmp_path)))
    # Outside pytest's 0700 tmp: nagios4 drops to its own user, which must read the files
    # and write check results here.
    with tempfile.TemporaryDirectory(prefix="kgt-nagios-") as name:
        work = Path(name)
        work.chmod(0o777)
        (work / "kgt.cfg").write_text(done.stdout)
        (work / "resource.cfg").write_text("$USER1$=/usr/lib/nagios/plugins\n")
        (work / "nagios.cfg").write_text(NAGIOS_CFG.format(d=work))
        verify = subprocess.run(
            ["nagios4", "-v", str(work / "nagios.cfg")], capture_output=True, text=True, check=False
        )
    assert verify.returncode == 0, verify.stdout
    assert "Total Errors:   0" in verify.stdout
    assert "Checked 20 services." in verify.stdout and "Checked 10 hosts." in verify.stdout
