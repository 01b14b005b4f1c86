"""The lab's services without Docker: how secrets reach commands, and the one service interface.

Every service is driven through `toolkit.services.ServiceManager` (the lab's `LabServices`
behind it, over a fake lab that answers `docker exec`): start, stop, kill, restart, reload,
wait until healthy and log tail, and a service that never becomes healthy fails with its
log tail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ROOT, fake_secrets, make_topology
from fakelab import FakeLab

from toolkit.drills.backend import LabBackend
from toolkit.errors import KgtError, LabError
from toolkit.lab import services
from toolkit.lab.boot import Booter, Progress
from toolkit.lab.docker import Result
from toolkit.lab.services import LabServices
from toolkit.lab.state import LabState
from toolkit.services import ROLE_SERVICES, SERVICES, Gate, ServiceManager, galera_args
from toolkit.topology.model import Host, Topology


class LocalHost:
    """Stands in for a LabHost: records the command and runs it with the local `sh` (unless not `execute`)."""

    name = "local"

    def __init__(self, *, execute: bool = True) -> None:
        self.commands: list[str] = []
        self.execute = execute

    def run(self, command: str, *, timeout: float = 60, input: str | bytes | None = None) -> Result:
        self.commands.append(command)
        if not self.execute:
            return Result(0, "", "")
        done = subprocess.run(["sh", "-c", command], input=input, capture_output=True, text=True, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("password", ["-starts-with-a-dash", "--bootstrap-url-x", "plain.value~_"])
def test_keystone_manage_hands_a_secret_over_stdin_never_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    fake = tmp_path / "keystone-manage"
    record = tmp_path / "seen"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps([sys.argv[1:], os.environ.get('OS_BOOTSTRAP_PASSWORD')]))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(services, "KEYSTONE_MANAGE", str(fake))
    host = LocalHost()
    services.keystone_manage(host, "bootstrap --bootstrap-region-id r1", secret_env=("OS_BOOTSTRAP_PASSWORD", password))
    argv, env = json.loads(record.read_text())
    assert argv == ["bootstrap", "--bootstrap-region-id", "r1"]
    assert env == password
    assert all(password not in command for command in host.commands)


def test_keystone_manage_failure_names_the_subcommand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "KEYSTONE_MANAGE", "false")
    with pytest.raises(RuntimeError, match="keystone-manage db_sync failed"):
        services.keystone_manage(LocalHost(), "db_sync")


# -- one interface: toolkit.services.ServiceManager, the lab's LabServices behind it -------------


@pytest.fixture
def fake_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLab:
    """A fake lab of the example-shaped topology, with Docker, HTTP and waits faked."""
    return FakeLab(make_topology(tmp_path, regions=3)).install(monkeypatch)


def _new(lab: FakeLab) -> list[str]:
    """The container commands since the last call."""
    seen = lab.commands()
    fresh, lab.records[:] = seen, [r for r in lab.records if r[0] != "exec"]
    return fresh


def test_start_stop_kill_restart_go_through_the_lab_service_manager(fake_lab: FakeLab) -> None:
    proxy = fake_lab.topology.host("r1-proxy1")
    m = LabServices(fake_lab.topology, proxy)
    m.start("haproxy")
    started = _new(fake_lab)
    assert started[0] == "r1-proxy1: mkdir -p /run/haproxy"
    assert "exec haproxy -db -f /etc/haproxy/haproxy.cfg" in started[1] and "/var/log/kgt/haproxy.log" in started[1]
    assert m.running("haproxy") and m.healthy("haproxy")
    m.stop("haproxy")
    (stop,) = _new(fake_lab)[1:]  # after the running/health probes
    assert stop.startswith("r1-proxy1: [ -f /run/kgt/haproxy.pid ] || exit 0;") and "kill -TERM $pid" in stop
    assert "-lt 200 ]" in stop  # the table's stop_wait (20 s) in tenths
    assert not m.running("haproxy")
    m.start("keepalived")
    m.kill("keepalived")
    commands = _new(fake_lab)
    assert commands[-2] == (
        "r1-proxy1: kill -KILL $(cat /run/kgt/keepalived-vrrp.pid /run/kgt/keepalived-main.pid 2>/dev/null) "
        "2>/dev/null; true"
    )
    assert "kill -KILL $pid" in commands[-1]
    m.restart("haproxy")
    stopped, prepared, started_again = _new(fake_lab)
    assert "kill -TERM" in stopped and prepared.endswith("mkdir -p /run/haproxy") and "nohup" in started_again


def test_galera_starts_with_the_table_command_and_its_extra_arguments(fake_lab: FakeLab) -> None:
    m = LabServices(fake_lab.topology, fake_lab.topology.host("r1-db1"))
    m.start("mariadb", *galera_args(bootstrap=True))
    prepare, start = _new(fake_lab)
    assert prepare == "r1-db1: mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld"
    assert "exec mariadbd --user=mysql --wsrep-new-cluster'" in start
    assert galera_args(position="u:7") == ("--wsrep-start-position=u:7",)
    m.kill("mariadb")
    (kill,) = _new(fake_lab)
    assert "kill -KILL $pid" in kill and "-lt 600 ]" in kill  # mariadb may take 60 s


def test_reload_signals_where_the_service_rereads_its_config_else_restarts(fake_lab: FakeLab) -> None:
    m = LabServices(fake_lab.topology, fake_lab.topology.host("r1-proxy1"))
    m.start("keepalived")
    _new(fake_lab)
    m.reload("keepalived")
    assert _new(fake_lab) == [
        "r1-proxy1: [ -f /run/kgt/keepalived.pid ] && kill -0 $(cat /run/kgt/keepalived.pid) 2>/dev/null "
        "&& kill -HUP $(cat /run/kgt/keepalived.pid); true"
    ]
    m.start("haproxy")
    _new(fake_lab)
    m.reload("haproxy")  # haproxy -db has no reload signal: a restart
    stopped, _, started = _new(fake_lab)
    assert "kill -TERM" in stopped and "exec haproxy -db" in started


def test_log_tail_reads_the_service_log(fake_lab: FakeLab) -> None:
    m = LabServices(fake_lab.topology, fake_lab.topology.host("r2-db1"))
    assert m.log_tail("keystone", 5) == "last words of keystone\n"
    assert _new(fake_lab) == ["r2-db1: tail -n 5 /var/log/kgt/keystone.log 2>/dev/null"]


def test_wait_healthy_asks_the_table_health_check_until_it_answers(fake_lab: FakeLab) -> None:
    db = fake_lab.topology.host("r1-db1")
    m = LabServices(fake_lab.topology, db)
    m.start("keystone")
    m.wait_healthy("keystone", SERVICES["keystone"].back or Gate(1))
    assert ["wait", 120, 0.2, 1.0] in fake_lab.records
    assert ["http", f"http://{db.address}:5000/v3", 5] in fake_lab.records


def test_a_service_that_never_becomes_healthy_is_a_lab_error_with_its_log_tail(
    fake_lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = fake_lab.fake_time(monkeypatch)
    fake_lab.never_healthy.add("haproxy")
    proxy = fake_lab.topology.host("r1-proxy1")
    m = LabServices(fake_lab.topology, proxy)
    m.start("haproxy")
    before = clock.now
    with pytest.raises(LabError) as raised:
        m.wait_healthy("haproxy", Gate(30, interval=0.2))
    assert str(raised.value) == (
        f"host r1-proxy1: http://{proxy.address}:8404/healthz 200 not ready after 30s\n"
        "--- last lines of haproxy log on r1-proxy1:\nlast words of haproxy"
    )
    assert 30 <= clock.now - before < 32  # it waited its gate, no longer
    assert fake_lab.commands()[-1] == "r1-proxy1: tail -n 15 /var/log/kgt/haproxy.log 2>/dev/null"


def test_the_drill_backend_brings_a_service_back_through_the_interface_and_fails_with_its_log(
    fake_lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_lab.fake_time(monkeypatch)
    backend = LabBackend(fake_lab.topology)
    proxy = fake_lab.topology.host("r2-proxy1")
    backend.start_service(proxy, "keepalived")
    drops = [c for c in fake_lab.commands() if "ip addr del" in c]
    vips = fake_lab.topology.region("r2").vips
    assert drops == [f"r2-proxy1: ip addr del {v.address}/32 dev eth0 2>/dev/null || true" for v in vips]
    fake_lab.never_healthy.add("keystone")
    with pytest.raises(LabError, match=r"(?s)host r2-db1: .*/v3 200 not ready after 120s\n.*last words of keystone"):
        backend.start_service(fake_lab.topology.host("r2-db1"), "keystone")
    with pytest.raises(LabError, match="unknown service 'ntpd'"):
        backend.start_service(proxy, "ntpd")


def test_lab_boot_names_the_step_of_a_service_that_never_becomes_healthy(
    fake_lab: FakeLab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_lab.fake_time(monkeypatch)
    fake_lab.never_healthy.add("memcached")
    booter = Booter(fake_lab.topology, fake_secrets(), LabState(tmp_path / "lab"), Progress(lambda line: None))
    with pytest.raises(LabError) as raised:
        booter.memcached()
    message = str(raised.value)
    assert message.startswith("step memcached: host r1-db1: memcached listening not ready after 30s\n")
    assert message.endswith("--- last lines of memcached log on r1-db1:\nlast words of memcached")


class RecordingServices(ServiceManager):
    """Another implementation (as a systemd one would be): records what the interface asks of it."""

    def __init__(self, topology: Topology, host: Host) -> None:
        self.recorded = LocalHost(execute=False)
        super().__init__(topology, host, self.recorded)
        self.calls: list[tuple[str, ...]] = []
        self.up: set[str] = set()

    def start(self, name: str, *args: str) -> None:
        self.calls.append(("start", name, *args))
        self.up.add(name)

    def stop(self, name: str, *, kill: bool = False) -> None:
        self.calls.append(("kill" if kill else "stop", name))
        self.up.discard(name)

    def running(self, name: str) -> bool:
        return name in self.up

    def signal(self, name: str, signal: str) -> None:
        self.calls.append(("signal", name, signal))

    def log_tail(self, name: str, lines: int = 15) -> str:
        return f"{name} log"


def test_restart_reload_and_bring_back_need_only_the_abstract_methods(tmp_path: Path) -> None:
    topology = make_topology(tmp_path, regions=3)
    m = RecordingServices(topology, topology.host("r1-proxy1"))
    m.restart("haproxy")
    m.reload("keepalived")
    m.reload("haproxy")
    m.kill("keepalived")
    assert m.calls == [
        ("stop", "haproxy"),
        ("start", "haproxy"),
        ("signal", "keepalived", "HUP"),
        ("stop", "haproxy"),
        ("start", "haproxy"),
        ("kill", "keepalived"),
    ]
    m.bring_back("keepalived")  # drops the region's VIPs on the host first
    assert m.calls[-1] == ("start", "keepalived") and m.running("keepalived")
    assert m.recorded.commands == [
        f"ip addr del {v.address}/32 dev eth0 2>/dev/null || true" for v in topology.region("r1").vips
    ]
    with pytest.raises(KgtError, match=r"unknown service 'ntpd' \(kgt drives mariadb, kgt-health"):
        m.reload("ntpd")


def test_every_role_the_lab_runs_has_its_services_in_the_table() -> None:
    assert ROLE_SERVICES == {
        "galera": ("mariadb", "kgt-health"),
        "garbd": ("garbd",),
        "haproxy": ("haproxy",),
        "keepalived": ("keepalived",),
        "keystone": ("keystone",),
        "memcached": ("memcached",),
        "dns": ("named",),
        "etcd": ("etcd",),
    }
    for service in SERVICES.values():
        assert (service.boot is None and service.back is None) or service.health is not None, service.name


def test_the_service_interface_imports_nothing_but_the_stdlib_and_its_own_helpers() -> None:
    code = (
        "import json, sys\nimport toolkit.services\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'yaml', 'jinja2', 'click') or m.startswith(('toolkit.lab', 'toolkit.topology')))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(done.stdout) == []
