"""Runs one drill: preflight, workloads and monitors, the fault at its time, the heal in a `finally`.

Ctrl-C (SIGINT) and SIGTERM only set a flag: every wait of the drill watches it, so an
interrupt ends the fault window early and the heal still runs; while healing, further
interrupts are refused with a message. The history is streamed to DIR/history.jsonl as
it happens; the report is written from it at the end (`report`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from toolkit.check.history import History, Op
from toolkit.drills import checker, preflight, report
from toolkit.drills.backend import Backend
from toolkit.drills.faults import Fault, kind_of
from toolkit.drills.monitor import Monitors
from toolkit.drills.nemesis import Nemesis
from toolkit.drills.workloads import Workloads, WorkloadSettings, keystone_endpoints
from toolkit.errors import DeadlineExceeded, DrillRefused
from toolkit.retry import poll
from toolkit.topology.model import Topology

if TYPE_CHECKING:
    from toolkit.secretstore import Secrets

Echo = Callable[[str], None]
PLAN_SCHEMA = "kgt.drill.plan/1"
TAIL = 3.0  # seconds the workloads go on once the site is healthy again


@dataclass(frozen=True)
class Timing:
    """When things happen, in seconds from the start of the workloads."""

    duration: float = 40.0  # the workloads run at least this long
    fault_at: float = 8.0
    heal_after: float = 14.0  # the fault window (the CLI's default: `faults.heal_after`)
    ready_timeout: float = 15.0  # how long to wait for a healthy site before refusing
    healthy_timeout: float = 90.0  # how long after the heal the site must be healthy again


class Interrupts:
    """SIGINT/SIGTERM → a flag the drill's waits watch; refused while healing."""

    def __init__(self, echo: Echo) -> None:
        self.event = threading.Event()
        self.healing_now = False
        self.echo = echo

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler: set the flag, say what happens next."""
        name = signal.Signals(signum).name
        if self.healing_now:
            self.echo(f"kgt: {name}: healing the fault first, please wait")
        elif not self.event.is_set():
            self.echo(f"kgt: {name}: stopping the drill; the fault is healed before exiting")
        self.event.set()

    def is_set(self) -> bool:
        """Whether an interrupt arrived."""
        return self.event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep; True if interrupted."""
        return self.event.wait(max(0.0, seconds))

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM inside the block (main thread only)."""
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def healing(self) -> Iterator[None]:
        """Mark the heal as running."""
        self.healing_now = True
        try:
            yield
        finally:
            self.healing_now = False


def plan(topology: Topology, fault: Fault, timing: Timing, backend: Backend) -> dict[str, Any]:
    """The drill as data: the first operation of its history, all the checker needs besides the ops."""
    kind = kind_of(fault)
    prediction = kind.predict(topology)
    bounds = kind.bounds(topology, healthy=timing.healthy_timeout, rtt=backend.wan_rtt())
    return {
        "schema": PLAN_SCHEMA,
        "drill": fault.kind,
        "fault": fault.to_json(),
        "prediction": prediction.to_json(),
        "bounds": bounds.to_json(),
        "timing": {"duration": timing.duration, "fault_at": timing.fault_at, "heal_after": timing.heal_after},
        "topology": {
            "name": topology.name,
            "path": str(topology.source),
            "regions": [r.name for r in topology.regions],
            "galera_nodes": {h.name: h.region for h in topology.galera_nodes},
            "expected_size": len(topology.voters),
            "keystone_endpoints": {e.region: e.where for e in keystone_endpoints(topology)},
        },
        "dirty_reads": {h.name: backend.dirty_reads(h) for h in topology.galera_nodes},
        "backend": backend.__class__.__name__,
    }


@dataclass(frozen=True)
class _Drill:
    """What every step of one running drill reaches for."""

    topology: Topology
    secrets: Secrets
    backend: Backend
    fault: Fault
    timing: Timing
    interrupts: Interrupts
    echo: Echo


def run(
    topology: Topology,
    secrets: Secrets,
    backend: Backend,
    fault: Fault,
    timing: Timing,
    report_dir: Path,
    echo: Echo,
    settings: WorkloadSettings | None = None,
) -> checker.DrillResult:
    """Run the drill; write DIR/history.jsonl, report.json, report.html; return the checked result."""
    interrupts = Interrupts(echo)
    drill = _Drill(topology, secrets, backend, fault, timing, interrupts, echo)
    with interrupts.installed():
        _wait_ready(drill)
        workloads_plan = plan(topology, fault, timing, backend)
        report_dir.mkdir(parents=True, exist_ok=True)
        history_path = report_dir / "history.jsonl"
        with history_path.open("w", encoding="utf-8") as sink:
            ops = _drill(drill, History(sink), workloads_plan, settings or WorkloadSettings())
    result = checker.check(ops)
    report.write(report_dir, result)
    return result


def _wait_ready(drill: _Drill) -> None:
    """Wait (interruptibly) for a healthy site; DrillRefused if it is not, or on an interrupt."""
    found: list[str] = []

    def healthy() -> bool:
        found[:] = preflight.problems(drill.topology, drill.secrets, drill.backend)
        return not found

    try:
        poll(
            healthy,
            timeout=drill.timing.ready_timeout,
            what="a healthy site",
            every=2.0,
            retry_on=(),
            stop=drill.interrupts.is_set,
        )
    except DeadlineExceeded:  # or Stopped: the site was not healthy when the wait ended
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        raise DrillRefused(f"refusing to drill: the site is not healthy: {'; '.join(found[:3])}{more}") from None
    if drill.interrupts.is_set():
        raise DrillRefused("interrupted before the drill started; nothing was injected")


def _drill(drill: _Drill, history: History, drill_plan: dict[str, Any], settings: WorkloadSettings) -> list[Op]:
    def say(message: str) -> None:
        drill.echo(f"[{history.elapsed():6.1f}s] {message}")

    op = history.invoke("drill", "plan", region=None, host="", address="")
    history.complete(op, "ok", drill_plan)
    workloads = Workloads(drill.topology, drill.secrets, history, settings)
    workloads.prepare()
    monitors = Monitors(
        drill.topology,
        drill.backend,
        drill.secrets,
        history,
        drill.fault.regions,
        vip_interval=kind_of(drill.fault).vip_interval,
    )
    monitors.start()
    workloads.start()
    try:
        _timeline(drill, history, say)
    finally:
        say("stopping workloads, final reads")
        monitors.finish()
        workloads.finish(settle=not drill.interrupts.is_set())
    return list(history.ops)


def _timeline(drill: _Drill, history: History, say: Echo) -> None:
    """Wait, inject, wait, heal (always), then wait until healthy and let the workloads run on."""
    fault, timing, interrupts = drill.fault, drill.timing, drill.interrupts
    t0 = history.elapsed()
    say(f"workloads running; {fault.describe()} at t={t0 + timing.fault_at:.0f}s for {timing.heal_after:g}s")
    nemesis = Nemesis(drill.backend, fault, history, say)
    injected = False
    try:
        if not interrupts.sleep(t0 + timing.fault_at - history.elapsed()):
            injected = True  # before the call: a half-done injection is healed too
            say(f"inject: {fault.describe()}")
            try:
                nemesis.inject()
            except Exception as exc:  # recorded in the history; heal regardless
                say(f"inject failed: {exc}")
            interrupts.sleep(t0 + timing.fault_at + timing.heal_after - history.elapsed())
    finally:
        if injected:
            with interrupts.healing():
                say("heal")
                try:
                    nemesis.heal()
                except Exception as exc:
                    say(f"heal failed: {' '.join(str(exc).split())[:300]}")
    if interrupts.is_set():
        op = history.invoke("drill", "interrupted", region=None, host="", address="")
        history.complete(op, "info", error="interrupted", message="SIGINT/SIGTERM")
        return
    if injected:
        _healthy_again(drill, history, say)
        until = max(t0 + timing.duration, history.elapsed() + TAIL)
        interrupts.sleep(until - history.elapsed())


def _healthy_again(drill: _Drill, history: History, say: Echo) -> None:
    """Wait until the site is healthy after the heal, and record how long it took."""
    op = history.invoke("drill", "healthy", region=None, host="", address="")
    timeout = drill.timing.healthy_timeout
    seconds, problems = preflight.wait_healthy(
        drill.topology, drill.secrets, drill.backend, timeout, stop=drill.interrupts.is_set
    )
    if seconds is None:
        history.complete(op, "fail", {"problems": problems}, error="not-healthy", message="; ".join(problems))
        say(f"not healthy {timeout:g}s after the heal: {'; '.join(problems[:3])}")
    else:
        history.complete(op, "ok", {"seconds": round(seconds, 3)})
        say("healthy again")
