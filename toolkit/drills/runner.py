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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from toolkit.check.history import History, Op
from toolkit.drills import checker, preflight, report
from toolkit.drills.backend import Backend
from toolkit.drills.faults import Fault, derive_bounds, predict
from toolkit.drills.monitor import Monitors
from toolkit.drills.nemesis import Nemesis
from toolkit.drills.workloads import Workloads, WorkloadSettings, keystone_endpoints
from toolkit.errors import KgtError
from toolkit.topology.model import Topology

if TYPE_CHECKING:
    from toolkit.secretstore import Secrets

Echo = Callable[[str], None]
PLAN_SCHEMA = "kgt.drill.plan/1"
TAIL = 3.0  # seconds the workloads go on once the site is healthy again


class DrillRefused(KgtError):
    """The drill did not start (site not healthy, interrupted before the fault): verdict unknown."""

    exit_code = 2


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
    prediction = predict(topology, fault)
    bounds = derive_bounds(topology, fault, healthy=timing.healthy_timeout, rtt=backend.wan_rtt())
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
    with interrupts.installed():
        found = []
        started = time.monotonic()
        while True:
            found = preflight.problems(topology, secrets, backend)
            if not found or interrupts.is_set() or time.monotonic() - started >= timing.ready_timeout:
                break
            interrupts.sleep(2.0)
        if found:
            more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
            raise DrillRefused(f"refusing to drill: the site is not healthy: {'; '.join(found[:3])}{more}")
        if interrupts.is_set():
            raise DrillRefused("interrupted before the drill started; nothing was injected")
        workloads_plan = plan(topology, fault, timing, backend)
        report_dir.mkdir(parents=True, exist_ok=True)
        history_path = report_dir / "history.jsonl"
        with history_path.open("w", encoding="utf-8") as sink:
            history = History(sink)
            ops = _drill(
                topology,
                secrets,
                backend,
                fault,
                timing,
                history,
                interrupts,
                workloads_plan,
                echo,
                settings or WorkloadSettings(),
            )
    result = checker.check(ops)
    report.write(report_dir, result)
    return result


def _drill(
    topology: Topology,
    secrets: Secrets,
    backend: Backend,
    fault: Fault,
    timing: Timing,
    history: History,
    interrupts: Interrupts,
    drill_plan: dict[str, Any],
    echo: Echo,
    settings: WorkloadSettings,
) -> list[Op]:
    def say(message: str) -> None:
        echo(f"[{history.elapsed():6.1f}s] {message}")

    op = history.invoke("drill", "plan", region=None, host="", address="")
    history.complete(op, "ok", drill_plan)
    workloads = Workloads(topology, secrets, history, settings)
    workloads.prepare()
    monitors = Monitors(
        topology, backend, secrets, history, fault.regions, vip_interval=0.2 if fault.kind == "proxy-loss" else 1.0
    )
    monitors.start()
    workloads.start()
    try:
        _timeline(topology, secrets, backend, fault, timing, history, interrupts, say)
    finally:
        say("stopping workloads, final reads")
        monitors.finish()
        workloads.finish(settle=not interrupts.is_set())
    return list(history.ops)


def _timeline(
    topology: Topology,
    secrets: Secrets,
    backend: Backend,
    fault: Fault,
    timing: Timing,
    history: History,
    interrupts: Interrupts,
    say: Echo,
) -> None:
    """Wait, inject, wait, heal (always), then wait until healthy and let the workloads run on."""
    t0 = history.elapsed()
    say(f"workloads running; {fault.describe()} at t={t0 + timing.fault_at:.0f}s for {timing.heal_after:g}s")
    nemesis = Nemesis(backend, fault, history, say)
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
    if not injected:
        return
    op = history.invoke("drill", "healthy", region=None, host="", address="")
    seconds, problems = preflight.wait_healthy(
        topology, secrets, backend, timing.healthy_timeout, stop=interrupts.is_set
    )
    if seconds is None:
        history.complete(op, "fail", {"problems": problems}, error="not-healthy", message="; ".join(problems))
        say(f"not healthy {timing.healthy_timeout:g}s after the heal: {'; '.join(problems[:3])}")
    else:
        history.complete(op, "ok", {"seconds": round(seconds, 3)})
        say("healthy again")
    until = max(t0 + timing.duration, history.elapsed() + TAIL)
    interrupts.sleep(until - history.elapsed())
