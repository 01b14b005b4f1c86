"""The WAN router's rule table (toolkit/lab/wanrouter/rules.py): rules in order -> per-pair impairment."""

from __future__ import annotations

import pytest

from toolkit.lab.wanrouter.errors import ConfigError
from toolkit.lab.wanrouter.rules import CLEAR, MAX_DELAY_MS, LinkParams, cut_region_rules, number, resolve_rules

NAMES = ["r1", "r2", "r3"]


def test_no_rules_leave_every_pair_out() -> None:
    assert resolve_rules([], NAMES) == {}
    assert resolve_rules(None, NAMES) == {}


def test_a_pair_rule_is_entered_in_both_directions_only() -> None:
    links = resolve_rules([{"between": ["r2", "r1"], "delay_ms": 5}], NAMES)
    assert links == {("r1", "r2"): LinkParams(delay_ms=5.0), ("r2", "r1"): LinkParams(delay_ms=5.0)}


def test_a_null_rule_names_every_pair() -> None:
    links = resolve_rules([{"between": None, "loss_pct": 2}], NAMES)
    assert set(links) == {(a, b) for a in NAMES for b in NAMES if a != b}
    assert set(links.values()) == {LinkParams(loss_pct=2.0)}


def test_later_rules_override_only_the_fields_they_set() -> None:
    links = resolve_rules(
        [{"between": None, "delay_ms": 10, "loss_pct": 1}, {"between": ["r1", "r3"], "cut": True}], NAMES
    )
    assert links[("r3", "r1")] == LinkParams(delay_ms=10.0, loss_pct=1.0, cut=True)
    assert links[("r1", "r2")] == LinkParams(delay_ms=10.0, loss_pct=1.0)


def test_a_pair_cleared_by_a_later_rule_is_left_out() -> None:
    links = resolve_rules([{"between": ["r1", "r2"], "cut": True}, {"between": ["r1", "r2"], "cut": False}], NAMES)
    assert links == {}


def test_a_rule_is_checked_even_when_it_names_no_pair() -> None:
    # One region has no pairs at all: a bad value must still be refused.
    with pytest.raises(ConfigError, match=r"rules\[0\]\.delay_ms"):
        resolve_rules([{"between": None, "delay_ms": -1}], ["only"])


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"between": None}, "'rules' must be a list"),
        (["x"], r"rules\[0\] must be an object"),
        ([{}, {"between": "r1"}], r"rules\[1\]\.between must be null or \[region, region\]"),
        ([{"between": ["r1", 2]}], "between must be null"),
        ([{"between": ["r1", "r2", "r3"]}], "between must be null"),
        ([{"loss_pct": True}], "loss_pct must be a number"),
        ([{"delay_ms": MAX_DELAY_MS + 1}], "delay_ms must be within"),
    ],
)
def test_bad_rules_name_where_they_are(rules: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_rules(rules, NAMES)


def test_number_accepts_ints_and_floats_within_bounds_and_refuses_bools() -> None:
    assert number(3, "x", 0, 5) == 3.0 and isinstance(number(3, "x", 0, 5), float)
    assert number(0.0, "x", 0, 5) == 0.0 and number(5, "x", 0, 5) == 5.0
    with pytest.raises(ConfigError, match="x must be a number, got True"):
        number(True, "x", 0, 5)
    with pytest.raises(ConfigError, match=r"x must be within \[0, 5\], got 5.5"):
        number(5.5, "x", 0, 5)


def test_link_params_text() -> None:
    assert CLEAR.is_clear and CLEAR.describe() == "delay=0ms"
    assert LinkParams(delay_ms=2.5, loss_pct=0.5).describe() == "delay=2.5ms loss=0.5%"
    assert LinkParams(delay_ms=9, cut=True).describe() == "CUT"


def test_cut_region_rules_name_every_other_region_once() -> None:
    assert cut_region_rules("r2", NAMES) == [
        {"between": ["r2", "r1"], "cut": True},
        {"between": ["r2", "r3"], "cut": True},
    ]
    assert cut_region_rules("r1", ["r1"]) == []
