"""The drill's history split into what the checks read: the plan, the nemesis, the streams, the samples."""

from __future__ import annotations

from typing import Any

from toolkit.check.history import Done, Op, pairs
from toolkit.drills.faults import Bounds, Fault, FaultKind, Prediction, kind_of

GALERA_F = ("incr", "read", "status", "rtt")
CONFLICT = "certification-conflict"
# Processes that are not clients: their failures are no client's.
NOT_CLIENTS = ("mon-", "nemesis", "drill", "setup", "final")


def node_state(d: Done) -> str:
    """Primary, non-Primary, or down, from one Galera monitor sample."""
    if d.type != "ok" or not isinstance(d.value, dict):
        return "down"
    return "Primary" if d.value.get("status") == "Primary" else "non-Primary"


def whole(value: object, expected_size: int) -> bool:
    """Whether a Galera status value says Primary, Synced and every voter in the cluster."""
    return (
        isinstance(value, dict)
        and value.get("status") == "Primary"
        and value.get("state") == "Synced"
        and value.get("size") == expected_size
    )


class DrillHistory:
    """The history of one drill, with the moments the checks measure from.

    `f0`/`f1`: the injection's invocation and completion; `h0`/`h1`: the heal's;
    `window_end`: the end of the fault window (the heal, else the history's end).
    """

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.done = [Done(s, e) for s, e in pairs(ops)]
        self.end = max((op.time for op in ops), default=0.0)
        plan = next((d for d in self.done if d.start.process == "drill" and d.start.f == "plan"), None)
        if plan is None or not isinstance(plan.value, dict):
            raise ValueError("the history has no drill plan (process 'drill', f 'plan')")
        self.plan: dict[str, Any] = plan.value
        self.fault = Fault.from_json(self.plan["fault"])
        self.prediction = Prediction.from_json(self.plan["prediction"])
        self.bounds = Bounds.from_json(self.plan["bounds"])
        self.topo: dict[str, Any] = self.plan["topology"]
        self.inject = self._one("nemesis", "inject")
        self.heal = self._one("nemesis", "heal")
        self.healthy = self._one("drill", "healthy")
        self.interrupted = self._one("drill", "interrupted")
        self.workload_start = min((d.t0 for d in self.done if d.start.process in self.topo["regions"]), default=0.0)
        self.f0 = self.inject.t0 if self.inject else None
        self.f1 = self.inject.t1 if self.inject and self.inject.end else self.f0
        self.h0 = self.heal.t0 if self.heal else None
        self.h1 = self.heal.t1 if self.heal and self.heal.end else None
        self.window_end = self.h0 if self.h0 is not None else self.end
        self.samples = sorted(
            (d for d in self.done if d.start.process.startswith("mon-") and d.end is not None), key=lambda d: d.t1
        )

    @property
    def kind(self) -> FaultKind:
        """The fault's kind (its own expectations and what it moves)."""
        return kind_of(self.fault)

    @property
    def regions(self) -> list[str]:
        """The site's regions, in the file's order."""
        return list(self.topo["regions"])

    @property
    def galera_nodes(self) -> dict[str, str]:
        """Galera node → its region."""
        return dict(self.topo["galera_nodes"])

    @property
    def expected_size(self) -> int:
        """The cluster size when whole (every voter)."""
        return int(self.topo["expected_size"])

    def _one(self, process: str, f: str) -> Done | None:
        return next((d for d in self.done if d.start.process == process and d.start.f == f), None)

    def select(self, f: str | tuple[str, ...], process: str | None = None, region: str | None = None) -> list[Done]:
        """The operations of `f` (of `process`, in `region`)."""
        fs = (f,) if isinstance(f, str) else f
        return [
            d
            for d in self.done
            if d.start.f in fs
            and (process is None or d.start.process == process)
            and (region is None or d.start.region == region)
        ]

    def galera_ops(self) -> list[Op]:
        """The Galera workload's operations, for the verify checker as they are."""
        regions = self.regions
        return [
            op for op in self.ops if op.f in GALERA_F and (op.process in regions or op.process in ("setup", "final"))
        ]

    def galera_samples(self) -> list[Done]:
        """The Galera monitors' samples, in time order."""
        return [d for d in self.samples if d.start.f == "galera"]

    def first_state(self, region: str, state: str, lo: float, hi: float) -> float | None:
        """When every Galera node of `region` had reported `state` (monitor samples in [lo, hi])."""
        nodes = [n for n, r in self.galera_nodes.items() if r == region]
        times = []
        for node in nodes:
            seen = [
                d.t1
                for d in self.done
                if d.start.f == "galera"
                and d.start.host == node
                and d.end is not None
                and lo <= d.t1 <= hi
                and node_state(d) == state
            ]
            if not seen:
                return None
            times.append(min(seen))
        return max(times) if times else None

    def writes(self, region: str, conflicts: bool = False) -> list[Done]:
        """The region's writes; a lost certification race only with `conflicts`.

        A lost race means the region answered: not counted in availability (as in `kgt
        check verify`), and an answer, not a failure, for the gaps.
        """
        return [
            d
            for d in self.select("incr", process=region)
            if conflicts or not (d.end is not None and d.end.error == CONFLICT)
        ]

    def tokens(self, region: str) -> list[Done]:
        """Tokens issued through the region's endpoint."""
        return [d for d in self.select("issue", region=region) if d.start.process.startswith("ks-")]

    def validations(self, region: str) -> list[Done]:
        """Tokens (of every region) validated through the region's endpoint.

        A stream of its own: a validation answered from Keystone's cache must not split a
        run of failed issues into short gaps.
        """
        return [d for d in self.select("validate", region=region) if d.start.process.startswith("ks-")]

    def dirty(self, region: str) -> list[Done]:
        """The region's dirty reads (from its non-Primary node)."""
        return self.select("dirty-read", process=f"dirty-{region}")

    def finals(self) -> dict[str, Any]:
        """Each node's status read after the drill (`final` process)."""
        return {
            d.start.host: d.value
            for d in self.done
            if d.start.process == "final" and d.start.f == "status" and d.type == "ok"
        }

    def dirty_reads_on(self, region: str) -> bool:
        """Whether a Galera node of the region serves dirty reads (from the plan)."""
        return any(on for node, on in self.plan.get("dirty_reads", {}).items() if self.galera_nodes[node] == region)
