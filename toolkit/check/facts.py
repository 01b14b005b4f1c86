"""A verify history read once: the operations the checkers of `checker` judge, grouped.

`Facts.of(ops)` pairs the invocations with their completions and sorts them by what they
are (the workers' increments, reads and status samples; the setup's initial read; the
final reads of every node), so each checker reads one property without walking the raw
history again. Nothing here judges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from toolkit.check.history import Done, Op, pairs
from toolkit.wsrep import PRIMARY

BOOKKEEPING = ("setup", "final")


@dataclass(frozen=True)
class Final:
    """What the "final" process read of every node, and the counters of the newest Primary component's."""

    nodes: dict[str, dict[str, Any]]  # host -> {"status": str|None, "conf_id": int|None, "values": {row: n}|None}
    primary: tuple[dict[str, int], ...]  # the counters of the nodes in the newest Primary component

    @property
    def checked(self) -> bool:
        """Whether at least one Primary node could be read at the end."""
        return bool(self.primary)


@dataclass(frozen=True)
class Facts:
    """The history, paired and grouped (see the module docstring)."""

    ops: tuple[Op, ...]
    done: tuple[Done, ...]
    regions: tuple[str, ...]  # the workers' regions, in the topology's order
    rows: tuple[str, ...]  # the counters written or read, the regions' own first
    incr: tuple[Done, ...]  # the workers' increments
    reads: tuple[Done, ...]
    status: tuple[Done, ...]
    initial: dict[str, int] | None  # the setup's read of the counters before the workers began
    final: Final

    @property
    def oks(self) -> tuple[Done, ...]:
        """The acknowledged increments."""
        return tuple(d for d in self.incr if d.type == "ok")

    @classmethod
    def of(cls, ops: Iterable[Op]) -> Facts:
        """Read a history."""
        ops = tuple(ops)
        done = tuple(Done(s, e) for s, e in pairs(ops))
        regions = tuple(_regions(ops))

        def worker(f: str) -> tuple[Done, ...]:
            return tuple(d for d in done if d.start.f == f and d.start.process in regions)

        initial = next(
            (d.values for d in done if d.start.process == "setup" and d.start.f == "read" and d.type == "ok"), None
        )
        return cls(
            ops,
            done,
            regions,
            _rows(done, regions),
            worker("incr"),
            worker("read"),
            worker("status"),
            initial,
            _final(done),
        )


def _regions(ops: Sequence[Op]) -> list[str]:
    """The workers' regions: in the order the setup measured them (the topology's), then as they appear."""
    setup = [op.region for op in ops if op.process == "setup" and op.f == "rtt" and op.region]
    workers = [op.process for op in ops if op.process not in BOOKKEEPING]
    present = set(workers)
    return list(dict.fromkeys([*(r for r in setup if r in present), *workers]))


def _rows(done: Sequence[Done], regions: Sequence[str]) -> tuple[str, ...]:
    """The counters increments and reads named: the regions' own in region order, then the others."""
    seen: dict[str, None] = {}
    for d in done:
        if d.start.f in ("incr", "read"):
            for row in d.values:
                seen.setdefault(row)
    return (*(r for r in regions if r in seen), *(r for r in seen if r not in regions))


def _final(done: Sequence[Done]) -> Final:
    """The final reads: each node's status and counters, and the counters of the Primary ones.

    Only the newest Primary component counts: a node that still says Primary under an older
    configuration (`wsrep_cluster_conf_id`) has not yet seen that the others evicted it (a
    cut healed a moment ago) and serves a stale view; its counters are kept in `nodes` but
    judged by nobody. A write acknowledged only there is then missing from the newest
    component and still found, as a lost write.
    """
    status: dict[str, str | None] = {}
    conf: dict[str, int | None] = {}
    values: dict[str, dict[str, int] | None] = {}
    for d in done:
        if d.start.process != "final":
            continue
        if d.start.f == "status":
            read = (d.end.value or {}) if d.type == "ok" and d.end else {}
            status[d.start.host] = read.get("status")
            conf[d.start.host] = read.get("conf_id") if isinstance(read.get("conf_id"), int) else None
        elif d.start.f == "read":
            values[d.start.host] = d.values if d.type == "ok" else None
    hosts = list(dict.fromkeys([*status, *values]))
    nodes = {h: {"status": status.get(h), "conf_id": conf.get(h), "values": values.get(h)} for h in hosts}
    readable = {h: v for h, v in values.items() if v is not None and status.get(h) == PRIMARY}
    confs = [c for h in readable if (c := conf.get(h)) is not None]
    newest = max(confs, default=None)
    primary = tuple(v for h, v in readable.items() if conf.get(h) in (None, newest))
    return Final(nodes, primary)
