"""Faults as classes against a fake backend: every fault heals on every way out, and a new fault is one class.

The runner is driven for real (its timeline, its interrupt handling, the nemesis, the
checker and the report); only the site is fake: `FakeBackend` keeps the faults it was
given as state and reports what is still broken, and the workloads, monitors and health
checks that would reach a network are replaced by stand-ins.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner

from tests.unit.builders import EXAMPLE
from toolkit.drills import commands, faults, nemesis, preflight, runner
from toolkit.drills.backend import Backend, Echo
from toolkit.drills.faults import REGISTRY, Fault, FaultKind, Target, registered
from toolkit.lab.network import WanSpec
from toolkit.topology import load
from toolkit.topology.model import Host, Topology

QUICK = runner.Timing(duration=0.3, fault_at=0.05, heal_after=0.15, ready_timeout=1.0, healthy_timeout=1.0)


class BackendDown(Exception):
    """What the fake backend raises when told to fail."""


class FakeBackend(Backend):
    """A site that remembers every fault it was given; `problems()` lists what is still broken.

    `fail_heals`: the first N heal primitives raise (after doing nothing); `half_inject`:
    every inject primitive does its damage, then raises (a half-done injection); `sigint`:
    Ctrl-C arrives as soon as the damage is done.
    """

    def __init__(
        self, topology: Topology, fail_heals: int = 0, half_inject: bool = False, sigint: bool = False
    ) -> None:
        self.topology = topology
        self.fail_heals, self.half_inject, self.sigint = fail_heals, half_inject, sigint
        self.calls: list[str] = []
        self.cut_off: set[str] = set()
        self.wan: WanSpec | None = None
        self.hosts_down: set[str] = set()
        self.services_down: set[str] = set()
        self.crashed: set[str] = set()

    def _injected(self, call: str) -> None:
        self.calls.append(call)
        if self.sigint:
            os.kill(os.getpid(), signal.SIGINT)
        if self.half_inject:
            raise BackendDown(f"{call}: the command died half-way")

    def _healing(self, call: str) -> None:
        self.calls.append(call)
        if self.fail_heals > 0:
            self.fail_heals -= 1
            raise BackendDown(f"{call}: the site did not answer")

    def problems(self) -> list[str]:
        """Everything still broken."""
        return [
            *(f"{r} cut off" for r in sorted(self.cut_off)),
            *([f"WAN {self.wan.describe()}"] if self.wan else []),
            *(f"{h} down" for h in sorted(self.hosts_down)),
            *(f"{s} stopped" for s in sorted(self.services_down)),
            *(f"{n} crashed" for n in sorted(self.crashed)),
        ]

    def cut(self, region: str) -> None:
        """Cut a region off."""
        self.cut_off.add(region)
        self._injected(f"cut {region}")

    def heal_network(self) -> None:
        """Remove every cut and delay."""
        self._healing("heal_network")
        self.cut_off.clear()
        self.wan = None

    def wan_rtt(self) -> float:
        """A LAN."""
        return 0.0

    def degrade_wan(self, spec: WanSpec) -> None:
        """Delay the WAN."""
        self.wan = spec
        self._injected(f"degrade_wan {spec.describe()}")

    def stop_hosts(self, hosts: list[Host]) -> None:
        """Power hosts off."""
        self.hosts_down |= {h.name for h in hosts}
        self._injected(f"stop_hosts {','.join(h.name for h in hosts)}")

    def start_hosts(self, hosts: list[Host], echo: Echo) -> dict[str, Any]:
        """Power hosts on; their Galera nodes rejoin by IST."""
        self._healing(f"start_hosts {','.join(h.name for h in hosts)}")
        self.hosts_down -= {h.name for h in hosts}
        rejoin = {h.name: {"position": "u:1", "method": "IST", "seconds": 0.1} for h in hosts if h.has("galera")}
        return {"rejoin": rejoin, "total": 0.1}

    def stop_service(self, host: Host, service: str, *, kill: bool = False) -> None:
        """Stop a service."""
        self.services_down.add(f"{host.name}/{service}")
        self._injected(f"stop_service {host.name}/{service}" + (" -9" if kill else ""))

    def start_service(self, host: Host, service: str) -> None:
        """Start a service."""
        self._healing(f"start_service {host.name}/{service}")
        self.services_down.discard(f"{host.name}/{service}")

    def crash_node(self, host: Host) -> None:
        """kill -9 a node."""
        self.crashed.add(host.name)
        self._injected(f"crash_node {host.name}")

    def restart_node(self, host: Host) -> dict[str, Any]:
        """Restart a crashed node."""
        self._healing(f"restart_node {host.name}")
        self.crashed.discard(host.name)
        return {"position": "u:1", "method": "IST", "seconds": 0.1}

    def vips_held(self, host: Host) -> list[str]:
        """The VIPs the host is MASTER of."""
        return [str(v.address) for v in self.topology.region(host.region).vips if v.master == host.name]

    def dirty_reads(self, host: Host) -> bool | None:
        """On everywhere."""
        return True


class StandIn:
    """Workloads and monitors that touch no network (they record how they were asked)."""

    made: ClassVar[list[StandIn]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.finished: dict[str, Any] | None = None
        StandIn.made.append(self)

    def prepare(self) -> None:
        """Nothing to create."""

    def start(self) -> None:
        """Nothing to start."""

    def finish(self, **kwargs: Any) -> None:
        """Remember that it was stopped."""
        self.finished = kwargs


@pytest.fixture(scope="module")
def example() -> Topology:
    return load(EXAMPLE)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Healthy exactly when the fake backend says so; no workloads, monitors or pauses for real."""
    monkeypatch.setattr(preflight, "problems", lambda _t, _s, backend: backend.problems())
    monkeypatch.setattr(runner, "Workloads", StandIn)
    monkeypatch.setattr(runner, "Monitors", StandIn)
    monkeypatch.setattr(runner, "TAIL", 0.0)
    monkeypatch.setattr(nemesis, "HEAL_PAUSE", 0.0)
    StandIn.made.clear()


def drill(
    topology: Topology, backend: FakeBackend, kind: str, tmp_path: Path, timing: runner.Timing = QUICK
) -> tuple[runner.checker.DrillResult, list[dict[str, Any]], list[str]]:
    """Run one drill on the fake site: the result, the history as written, what the runner said."""
    said: list[str] = []
    result = runner.run(topology, {}, backend, faults.resolve(topology, kind), timing, tmp_path, said.append)  # type: ignore[arg-type]
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    return result, history, said


def nemesis_ops(history: list[dict[str, Any]], f: str) -> list[dict[str, Any]]:
    return [op for op in history if op["process"] == "nemesis" and op["f"] == f]


KINDS = sorted(REGISTRY)


@pytest.mark.parametrize("kind", KINDS)
def test_every_fault_heals_at_the_normal_end(example: Topology, kind: str, tmp_path: Path) -> None:
    backend = FakeBackend(example)
    result, history, _ = drill(example, backend, kind, tmp_path)
    assert backend.problems() == []
    assert [op["type"] for op in nemesis_ops(history, "inject")] == ["invoke", "ok"]
    assert [op["type"] for op in nemesis_ops(history, "heal")] == ["invoke", "ok"]
    assert result.timeline["healthy"] is not None and result.timeline["interrupted"] is None
    assert (tmp_path / "report.json").exists()
    workloads, monitors = StandIn.made
    assert workloads.finished == {"settle": True} and monitors.finished == {}


@pytest.mark.parametrize("kind", KINDS)
def test_every_fault_heals_a_half_done_injection(example: Topology, kind: str, tmp_path: Path) -> None:
    backend = FakeBackend(example, half_inject=True)
    result, history, said = drill(example, backend, kind, tmp_path)
    assert backend.problems() == []
    assert nemesis_ops(history, "inject")[-1]["type"] == "fail"
    assert nemesis_ops(history, "heal")[-1]["type"] == "ok"
    assert any(line.endswith("] heal") for line in said)
    injected = next(e for e in result.expectations if e.name == "fault injected")
    assert injected.ok is None and "half-way" in injected.observed
    assert result.verdict != "pass"


@pytest.mark.parametrize("kind", KINDS)
def test_every_fault_heals_when_the_fault_window_raises(
    example: Topology, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FakeBackend(example)
    waits: list[float] = []
    real_sleep = runner.Interrupts.sleep

    def sleep(self: runner.Interrupts, seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 2:  # the fault window, once injected
            raise RuntimeError("a bug inside the fault window")
        return real_sleep(self, seconds)

    monkeypatch.setattr(runner.Interrupts, "sleep", sleep)
    with pytest.raises(RuntimeError, match="inside the fault window"):
        drill(example, backend, kind, tmp_path)
    assert backend.problems() == []
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert nemesis_ops(history, "heal")[-1]["type"] == "ok"
    assert StandIn.made[0].finished is not None  # the workloads were stopped too


@pytest.mark.parametrize("kind", KINDS)
def test_every_fault_heals_on_sigint(example: Topology, kind: str, tmp_path: Path) -> None:
    backend = FakeBackend(example, sigint=True)
    long_window = runner.Timing(duration=30.0, fault_at=0.05, heal_after=30.0, ready_timeout=1.0, healthy_timeout=1.0)
    result, history, said = drill(example, backend, kind, tmp_path, long_window)
    assert backend.problems() == []
    assert nemesis_ops(history, "heal")[-1]["type"] == "ok"
    assert result.timeline["interrupted"] is not None and result.timeline["end"] < 10
    assert result.verdict == "unknown"
    assert any("the fault is healed before exiting" in line for line in said)
    assert StandIn.made[0].finished == {"settle": False}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_heal_is_retried_and_reported(example: Topology, kind: str, tmp_path: Path) -> None:
    backend = FakeBackend(example, fail_heals=1)
    result, history, said = drill(example, backend, kind, tmp_path)
    assert backend.problems() == []
    heal = nemesis_ops(history, "heal")
    assert [op["type"] for op in heal] == ["invoke", "ok"]  # one heal operation, however many attempts
    assert heal[-1]["value"]["attempts"] == 2 and "did not answer" in heal[-1]["value"]["errors"][0]
    assert any(f"heal attempt 1 of {nemesis.HEAL_ATTEMPTS} failed" in line for line in said)
    healed = next(e for e in result.expectations if e.name == "healed")
    assert healed.ok is True and "attempt 2" in healed.observed
    report = json.loads((tmp_path / "report.json").read_text())
    assert any(e["name"] == "healed" and "attempt 2" in e["observed"] for e in report["expectations"])


@pytest.mark.parametrize("kind", KINDS)
def test_a_heal_that_keeps_failing_fails_the_drill_and_says_so(example: Topology, kind: str, tmp_path: Path) -> None:
    backend = FakeBackend(example, fail_heals=100)
    result, history, said = drill(example, backend, kind, tmp_path)
    heal = nemesis_ops(history, "heal")
    assert heal[-1]["type"] == "fail" and heal[-1]["message"].startswith(f"{nemesis.HEAL_ATTEMPTS} attempts")
    assert sum(1 for call in backend.calls if not call.startswith(("cut", "degrade", "stop", "crash"))) >= 3
    assert any(line.split("] ", 1)[-1].startswith("heal failed:") for line in said)
    healed = next(e for e in result.expectations if e.name == "healed")
    assert healed.ok is False and "did not answer" in healed.observed
    assert result.verdict == "fail" and result.code == 1


def test_the_injection_and_heal_order_of_each_fault(example: Topology, tmp_path: Path) -> None:
    """What each fault does to the site, in order (the lab's behaviour rests on it)."""
    expected = {
        "region-partition": ["cut r3", "heal_network"],
        "region-loss": ["stop_hosts " + ",".join(h.name for h in example.region("r3").hosts)],
        "keystone-loss": [f"stop_service {h.name}/keystone" for h in example.region("r3").with_role("keystone")],
        "proxy-loss": ["stop_service r3-proxy1/keepalived", "stop_service r3-proxy1/haproxy"],
        "node-loss": ["crash_node r3-db1", "restart_node r3-db1"],
        "wan-degrade": ["degrade_wan rtt 200ms, loss 0% between all region pairs", "heal_network"],
    }
    expected["region-loss"].append(expected["region-loss"][0].replace("stop_hosts", "start_hosts"))
    expected["keystone-loss"] += [c.replace("stop_", "start_") for c in expected["keystone-loss"]]
    expected["proxy-loss"] += ["start_service r3-proxy1/haproxy", "start_service r3-proxy1/keepalived"]
    for kind, calls in expected.items():
        backend = FakeBackend(example)
        drill(example, backend, kind, tmp_path / kind)
        assert backend.calls == calls, kind
    assert set(expected) == set(faults.STANDARD)


def test_only_a_proxy_loss_samples_vips_closely(example: Topology, tmp_path: Path) -> None:
    for kind, interval in (("proxy-loss", 0.2), ("region-partition", 1.0)):
        StandIn.made.clear()
        drill(example, FakeBackend(example), kind, tmp_path / kind)
        assert StandIn.made[1].kwargs["vip_interval"] == interval


class MemcachedLoss(FaultKind):
    """Stop memcached on one host of REGION."""

    options = (click.option("--region", help="the region (default: the last)"),)
    standard = False

    @classmethod
    def resolve(cls, topology: Topology, target: Target) -> Fault:
        return Fault(cls.name, region=target.region or topology.regions[-1].name)

    def _host(self, backend: Backend) -> Host:
        assert self.fault.region
        return backend.topology.region(self.fault.region).with_role("memcached")[0]

    def inject(self, backend: Backend) -> dict[str, Any]:
        backend.stop_service(self._host(backend), "memcached")
        return {"stopped": self._host(backend).name}

    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        backend.start_service(self._host(backend), "memcached")
        return {"started": self._host(backend).name}


def test_a_new_fault_is_one_class(example: Topology, tmp_path: Path) -> None:
    with registered("memcached-loss", MemcachedLoss):
        assert "memcached-loss" not in faults.standard_set()  # not standard: `kgt drill all` leaves it out
        backend = FakeBackend(example)
        result, history, _ = drill(example, backend, "memcached-loss", tmp_path)
        host = example.region("r3").with_role("memcached")[0].name
        assert backend.calls == [f"stop_service {host}/memcached", f"start_service {host}/memcached"]
        assert backend.problems() == []
        assert [op["type"] for op in nemesis_ops(history, "heal")] == ["invoke", "ok"]
        assert result.plan["drill"] == "memcached-loss" and result.timeline["healthy"] is not None
        assert result.plan["prediction"]["kind"] == "healthy"  # no Galera failure: the defaults
        assert Fault.from_json(result.plan["fault"]).describe() == "memcached-loss r3"
        command = commands.fault_command(MemcachedLoss)
        names = [p.name for p in command.params]
        assert names[0] == "region" and {"lab_dir", "duration", "fmt", "topology"} <= set(names)
        shown = CliRunner().invoke(command, ["--help"])
        assert shown.exit_code == 0 and "Stop memcached on one host of REGION." in shown.output
    assert "memcached-loss" not in REGISTRY


def test_a_fault_kind_is_registered_once() -> None:
    with registered("memcached-loss", MemcachedLoss), pytest.raises(ValueError, match="registered twice"):
        faults.register("memcached-loss")(MemcachedLoss)


def test_the_registry_makes_the_drill_commands(example: Topology) -> None:
    assert set(commands.drill.commands) == {*REGISTRY, "all"}
    assert faults.standard_set() == faults.STANDARD == tuple(REGISTRY)
    wan = commands.drill.commands["wan-degrade"]
    assert [p.name for p in wan.params][:2] == ["rtt", "between"] and "topology" in {p.name for p in wan.params}
    for name, cls in REGISTRY.items():
        kind = faults.kind_of(faults.resolve(example, name))
        assert isinstance(kind, cls) and commands.drill.commands[name].help == cls.help
        assert kind.predict(example) == faults.predict(example, kind.fault)
        assert kind.bounds(example, rtt=0.05) == faults.derive_bounds(example, kind.fault, rtt=0.05)


@pytest.mark.parametrize("form", [["TOPO"], ["--topology", "TOPO"]])
def test_drill_all_boots_a_fresh_lab_from_the_topology_argument(
    form: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.errors import KgtError
    from toolkit.lab import commands as lab_commands

    booted: list[Any] = []

    @click.command()
    def up(**kwargs: Any) -> None:
        booted.append(kwargs)
        raise KgtError("stop here: no Docker in unit tests")

    monkeypatch.setattr(lab_commands, "up", up)
    args = ["all", *(str(EXAMPLE) if a == "TOPO" else a for a in form), "--lab-dir", str(tmp_path / "lab")]
    done = CliRunner().invoke(commands.drill, args)
    assert isinstance(done.exception, KgtError), done.output
    assert done.output.splitlines()[-1] == f"booting a fresh lab from {EXAMPLE} in {tmp_path / 'lab'}"
    assert booted == [{"topology": EXAMPLE, "secrets_path": None, "lab_dir": tmp_path / "lab"}]
    assert ("deprecated" in done.output) == (form[0] == "--topology")


def test_drill_all_without_a_lab_or_a_topology_is_a_usage_error(tmp_path: Path) -> None:
    from toolkit.errors import UsageError

    done = CliRunner().invoke(commands.drill, ["all", "--lab-dir", str(tmp_path), "--format", "text"])
    assert isinstance(done.exception, UsageError) and "give a TOPOLOGY" in str(done.exception)
