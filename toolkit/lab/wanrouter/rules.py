"""The rule table: the config's ``rules`` resolved into the impairment of each region pair (pure).

Rules apply in order; a later rule overrides, for the pairs it names, the fields it sets
(unset fields keep their earlier value). ``between: null`` names every pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TypedDict

from .errors import ConfigError

MAX_DELAY_MS = 60_000.0
RULE_KEYS = frozenset({"between", "delay_ms", "loss_pct", "cut"})


@dataclasses.dataclass(frozen=True)
class LinkParams:
    """Impairment of one region pair (applies in both directions)."""

    delay_ms: float = 0.0
    loss_pct: float = 0.0
    cut: bool = False

    @property
    def is_clear(self) -> bool:
        """True when the pair is not impaired at all."""
        return self.delay_ms == 0.0 and self.loss_pct == 0.0 and not self.cut

    def describe(self) -> str:
        """Short text such as ``delay=25ms loss=1%`` or ``CUT``."""
        if self.cut:
            return "CUT"
        text = f"delay={self.delay_ms:g}ms"
        if self.loss_pct:
            text += f" loss={self.loss_pct:g}%"
        return text


CLEAR = LinkParams()

Links = dict[tuple[str, str], LinkParams]


class Override(TypedDict, total=False):
    """The fields of :class:`LinkParams` one rule sets."""

    delay_ms: float
    loss_pct: float
    cut: bool


def number(value: object, where: str, lo: float, hi: float) -> float:
    """*value* as a float within [lo, hi], else a :class:`ConfigError` naming *where*."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    num = float(value)
    if not lo <= num <= hi:
        raise ConfigError(f"{where} must be within [{lo:g}, {hi:g}], got {num:g}")
    return num


def _pairs(between: object, where: str, names: Sequence[str]) -> list[frozenset[str]]:
    """The unordered region pairs a rule's ``between`` names."""
    if between is None:
        return [frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1 :]]
    if not isinstance(between, list) or len(between) != 2 or not all(isinstance(x, str) for x in between):
        raise ConfigError(f"{where}.between must be null or [region, region]")
    for region in between:
        if region not in names:
            raise ConfigError(f"{where}.between: unknown region {region!r}")
    if between[0] == between[1]:
        raise ConfigError(f"{where}.between names the same region twice")
    return [frozenset(between)]


def _override(rule: dict[str, object], where: str) -> Override:
    """The LinkParams fields a rule sets, validated."""
    fields: Override = {}
    if "delay_ms" in rule:
        fields["delay_ms"] = number(rule["delay_ms"], f"{where}.delay_ms", 0.0, MAX_DELAY_MS)
    if "loss_pct" in rule:
        fields["loss_pct"] = number(rule["loss_pct"], f"{where}.loss_pct", 0.0, 100.0)
    if "cut" in rule:
        cut = rule["cut"]
        if not isinstance(cut, bool):
            raise ConfigError(f"{where}.cut must be true or false")
        fields["cut"] = cut
    return fields


def resolve_rules(raw_rules: object, names: Sequence[str]) -> Links:
    """Per directed region pair, the impairment the rules leave it with (clear pairs left out)."""
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise ConfigError("'rules' must be a list")
    table: dict[frozenset[str], LinkParams] = {}
    for idx, rule in enumerate(raw_rules):
        where = f"rules[{idx}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where} must be an object")
        unknown = set(rule) - RULE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        pairs = _pairs(rule.get("between"), where, names)
        fields = _override(rule, where)
        for pair in pairs:
            table[pair] = dataclasses.replace(table.get(pair, CLEAR), **fields)
    links: Links = {}
    for pair, params in table.items():
        if params.is_clear:
            continue
        a, b = sorted(pair)
        links[(a, b)] = params
        links[(b, a)] = params
    return links


def cut_region_rules(region: str, regions: Iterable[str]) -> list[dict[str, object]]:
    """Rules that cut *region* off from every other region."""
    return [{"between": [region, other], "cut": True} for other in regions if other != region]
