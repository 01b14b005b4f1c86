"""When the WAN router loop wakes (toolkit/lab/wanrouter/schedule.py)."""

from __future__ import annotations

import pytest

from toolkit.lab.wanrouter.schedule import Ticker, wait_timeout


def test_a_ticker_is_due_at_once_then_every_interval() -> None:
    t = Ticker(1.0)
    assert t.due(100.0)
    assert not t.due(100.5)
    assert not t.due(100.999)
    assert t.due(101.0)
    assert t.next == pytest.approx(102.0)


def test_a_late_look_books_the_next_from_now_without_a_burst() -> None:
    t = Ticker(0.1)
    assert t.due(5.0)
    assert t.due(7.0)  # woke late: due once ...
    assert not t.due(7.05)  # ... not once for every interval missed
    assert t.next == pytest.approx(7.1)


def test_force_and_reset() -> None:
    t = Ticker(10.0)
    assert t.due(0.0)
    assert t.due(1.0, force=True)
    assert t.next == pytest.approx(11.0)
    t.reset()
    assert t.next == 0.0 and t.due(2.0)


def test_wait_timeout_is_until_the_earliest_deadline() -> None:
    assert wait_timeout(10.0, [10.5, 10.2]) == pytest.approx(0.2)
    assert wait_timeout(10.0, [10.5, None]) == pytest.approx(0.5)


def test_wait_timeout_is_zero_when_a_deadline_is_past() -> None:
    assert wait_timeout(10.0, [9.0, 11.0]) == 0.0


def test_wait_timeout_without_deadlines_waits_for_input() -> None:
    assert wait_timeout(10.0, [None, None]) is None
    assert wait_timeout(10.0, []) is None
