"""The verify checker's composition: one property per checker, verdicts merged worst-first."""

from __future__ import annotations

from test_check_checker import clean

from toolkit.check import properties
from toolkit.check.facts import Facts
from toolkit.check.properties import Anomaly, Verdict, judge, merge


def anomaly(kind: str) -> Anomaly:
    return Anomaly(kind, "r1", 1, "r1", 3, f"a {kind}")


def test_anomalies_beat_inconclusive_beat_valid_whatever_the_order() -> None:
    valid = Verdict("valid")
    unsure = Verdict("inconclusive", why="cannot tell")
    bad = Verdict.found([anomaly("lost-write")])
    assert merge([valid, unsure]).verdict == merge([unsure, valid]).verdict == "inconclusive"
    assert merge([bad, unsure, valid]).verdict == merge([valid, unsure, bad]).verdict == "anomalies"
    assert merge([valid, valid]) == Verdict("valid")
    assert merge([]) == Verdict("valid")


def test_merge_keeps_anomalies_in_checker_order_and_the_first_reason() -> None:
    first = Verdict("inconclusive", why="first")
    second = Verdict("inconclusive", why="second")
    a, b = Verdict.found([anomaly("lost-update")]), Verdict.found([anomaly("divergent"), anomaly("lost-write")])
    merged = merge([first, a, second, b])
    assert [x.kind for x in merged.anomalies] == ["lost-update", "divergent", "lost-write"]
    assert merged.why == "first"


def test_found_is_valid_without_anomalies() -> None:
    assert Verdict.found([]) == Verdict("valid")
    assert Verdict.found(iter([anomaly("x")])).verdict == "anomalies"


def test_a_clean_history_is_valid_for_every_property() -> None:
    facts = Facts.of(clean().ops())
    assert facts.regions == ("r1", "r2") and facts.final.checked
    for check in properties.PROPERTIES:
        assert check(facts) == Verdict("valid"), check.__name__


def test_an_empty_history_cannot_tell_and_says_why_first_in_table_order() -> None:
    facts = Facts.of([])
    assert properties.acknowledged(facts).why == "no increment was acknowledged"
    assert properties.lost_writes(facts).why == "no Primary node could be read at the end"
    assert judge(facts) == Verdict("inconclusive", why="no increment was acknowledged")


def test_a_new_property_is_one_more_checker_in_the_table() -> None:
    def never_twice(facts: Facts) -> Verdict:
        return Verdict.found(anomaly("toy") for d in facts.oks if d.start.process == "r1")

    facts = Facts.of(clean().ops())
    judged = judge(facts, (*properties.PROPERTIES, never_twice))
    assert judged.verdict == "anomalies" and [a.kind for a in judged.anomalies] == ["toy", "toy"]
