"""A drill's expectations and how they merge into one verdict, worst first (Jepsen's `compose`).

Each check of the drill checker (and each fault kind's own) yields `Expectation`s: one
property, decided (ok True/False) or not (None). `merge` folds them into pass / fail /
unknown, the worst one winning: fail over unknown over pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

VERDICT_CODES = {"pass": 0, "fail": 1, "unknown": 2}
_ORDER = ("pass", "unknown", "fail")  # best to worst


@dataclass(frozen=True)
class Expectation:
    """One thing the drill expects, and whether the history shows it (None: cannot tell)."""

    name: str
    region: str | None
    expected: str
    observed: str
    ok: bool | None

    @property
    def verdict(self) -> str:
        """pass, fail, or unknown (not decided)."""
        return {True: "pass", False: "fail", None: "unknown"}[self.ok]

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form: name, region, expected, observed, ok."""
        return asdict(self)


def merge(expectations: Iterable[Expectation], floor: str = "pass") -> str:
    """The worst verdict of `expectations`, and no better than `floor`."""
    return max((floor, *(e.verdict for e in expectations)), key=_ORDER.index)


def fmt_seconds(x: float | None) -> str:
    """`12.3s`, or `-` for nothing."""
    return "-" if x is None else f"{x:.1f}s"


def fmt_share(x: float | None) -> str:
    """`95%`, or `-` for nothing."""
    return "-" if x is None else f"{x:.0%}"
