"""The properties the verify checker judges: one small checker each, verdicts merged worst-first.

As in Jepsen's `checker/compose`, each checker reads the history (`facts.Facts`) and says
one thing: `valid`, `anomalies` (with the anomalies it found) or `inconclusive` (with why
it cannot tell). `merge` keeps the worst verdict (anomalies > inconclusive > valid), the
anomalies in the order of `PROPERTIES`, and the first reason a checker gave for being
inconclusive. See `checker`'s module docstring for what each anomaly means.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from toolkit.check.facts import Facts
from toolkit.check.history import Done
from toolkit.wsrep import PRIMARY

VERDICTS = ("valid", "inconclusive", "anomalies")  # best first


@dataclass(frozen=True)
class Anomaly:
    """One violation found in the history."""

    kind: str
    row: str | None
    value: int | None
    region: str | None
    index: int | None  # history index of the operation (its completion) concerned
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """What one checker (or all of them, merged) says of the history."""

    verdict: str  # valid | anomalies | inconclusive
    anomalies: tuple[Anomaly, ...] = ()
    why: str | None = None  # what an inconclusive checker could not tell

    @classmethod
    def found(cls, anomalies: Iterator[Anomaly] | Sequence[Anomaly]) -> Verdict:
        """`anomalies` if there is any, else `valid`."""
        found = tuple(anomalies)
        return cls("anomalies", found) if found else cls("valid")


VALID = Verdict("valid")


def _index(d: Done) -> int | None:
    return d.end.index if d.end else None


def acknowledged(facts: Facts) -> Verdict:
    """Inconclusive unless some increment was acknowledged: with none, nothing could be lost."""
    return VALID if facts.oks else Verdict("inconclusive", why="no increment was acknowledged")


def lost_updates(facts: Facts) -> Verdict:
    """`lost-update`: two acknowledged increments wrote the same value of a row."""
    written: dict[tuple[str, int], list[Done]] = defaultdict(list)
    for d in facts.oks:
        for row, value in d.values.items():
            written[(row, value)].append(d)
    return Verdict.found(
        Anomaly(
            "lost-update",
            row,
            value,
            ds[1].start.process,
            _index(ds[1]),
            f"{len(ds)} acknowledged increments of '{row}' wrote {value} (by {', '.join(x.start.process for x in ds)})",
        )
        for (row, value), ds in sorted(written.items())
        if len(ds) > 1
    )


def non_primary_writes(facts: Facts) -> Verdict:
    """`non-primary-write`: acknowledged by a node that reported non-Primary before and after it.

    The serving node is the one the transaction recorded (`node`: through a VIP, a region's
    write may be served by another region's Primary node, as HAProxy's backup), judged by
    the status samples that name it; a history without it falls back to the samples of the
    increment's own region (its endpoint's node).
    """
    samples: dict[str, list[Done]] = defaultdict(list)
    for d in sorted((d for d in facts.status if d.type == "ok" and isinstance(d.value, dict)), key=lambda d: d.t0):
        samples[f"region:{d.start.process}"].append(d)
        if d.value.get("node"):
            samples[f"node:{d.value['node']}"].append(d)
    out = []
    for d in facts.oks:
        node = d.value.get("node") if isinstance(d.value, dict) else None
        mine = samples.get(f"node:{node}" if node else f"region:{d.start.process}", [])
        starts = [x.t0 for x in mine]
        i = bisect.bisect_left(starts, d.t0)
        before = mine[i - 1] if i > 0 and mine[i - 1].t1 <= d.t0 else None
        j = bisect.bisect_left(starts, d.t1)
        after = mine[j] if j < len(mine) else None
        if before and after and all(x.value.get("status") != PRIMARY for x in (before, after)):
            name = d.start.process
            served = f"{node} (through {d.start.host})" if node else d.start.host
            out.append(
                Anomaly(
                    "non-primary-write",
                    name,
                    d.values.get(name),
                    name,
                    _index(d),
                    f"increment acknowledged by {served} while it reported non-Primary before "
                    f"(t={before.t1:.3f}) and after (t={after.t0:.3f})",
                )
            )
    return Verdict.found(out)


def lost_writes(facts: Facts) -> Verdict:
    """`lost-write` (missing on every Primary node at the end) and `divergent` (on some only).

    Inconclusive when no Primary node could be read at the end.
    """
    if not facts.final.checked:
        return Verdict("inconclusive", why="no Primary node could be read at the end")
    return Verdict.found(_missing(facts))


def _missing(facts: Facts) -> Iterator[Anomaly]:
    finals = facts.final.primary
    for d in facts.oks:
        for row, value in d.values.items():
            final_seen = [f.get(row) for f in finals]
            missing = sum(1 for x in final_seen if x is None or x < value)
            if missing == len(final_seen):
                detail = (
                    f"'{row}' = {value} acknowledged by {d.start.host} at "
                    f"t={d.t1:.3f}, final value {max((x or 0) for x in final_seen)}"
                )
                yield Anomaly("lost-write", row, value, d.start.process, _index(d), detail)
            elif missing:
                detail = f"'{row}' = {value} present on some Primary nodes only: {final_seen}"
                yield Anomaly("divergent", row, value, d.start.process, _index(d), detail)


def unexpected_writes(facts: Facts) -> Verdict:
    """`unexpected-write`: a counter grew more than the acknowledged plus indeterminate increments."""
    initial = facts.initial
    if not facts.final.checked or not initial:
        return VALID
    out = []
    for row in facts.rows:
        if row not in initial:
            continue
        top = max(f.get(row, 0) for f in facts.final.primary)
        touched = [d for d in facts.incr if row in (d.start.value or {}).get("rows", ())]
        maybe = sum(1 for d in touched if d.type in ("ok", "info", "pending"))
        if top - initial[row] > maybe:
            out.append(
                Anomaly(
                    "unexpected-write",
                    row,
                    top,
                    None,
                    None,
                    f"'{row}' grew by {top - initial[row]} but only {maybe} increments "
                    "were acknowledged or indeterminate",
                )
            )
    return Verdict.found(out)


Checker = Callable[[Facts], Verdict]

# The order of the anomalies in the report, and of the reasons for being inconclusive.
PROPERTIES: tuple[Checker, ...] = (acknowledged, lost_updates, non_primary_writes, lost_writes, unexpected_writes)


def merge(verdicts: Sequence[Verdict]) -> Verdict:
    """The worst verdict, every anomaly in checker order, the first inconclusive checker's reason."""
    worst = max((v.verdict for v in verdicts), key=VERDICTS.index, default="valid")
    return Verdict(
        worst,
        tuple(a for v in verdicts for a in v.anomalies),
        next((v.why for v in verdicts if v.why), None),
    )


def judge(facts: Facts, checkers: Sequence[Checker] = PROPERTIES) -> Verdict:
    """Every checker on the history, merged (see `merge`)."""
    return merge([check(facts) for check in checkers])
