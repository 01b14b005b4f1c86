"""The WAN router's delay queue (toolkit/lab/wanrouter/delay.py)."""

from __future__ import annotations

from toolkit.lab.wanrouter.delay import DelayQueue


def test_equal_due_times_leave_in_push_order_across_keys() -> None:
    q = DelayQueue()
    for i, key in enumerate("abcab"):
        q.push(key, f"{key}{i}".encode(), 1.0)
    assert q.pop_due(1.0) == [b"a0", b"b1", b"c2", b"a3", b"b4"]


def test_a_key_remembers_its_last_due_time_after_sending() -> None:
    q = DelayQueue()
    q.push("k", b"p", 2.0)
    assert q.pop_due(3.0) == [b"p"]
    assert q.last_due("k") == 2.0 and q.last_due("other") is None
    q.push("k", b"q", 1.0)  # clamped to 2.0, the previous one's due time
    assert q.next_due() == 2.0


def test_bytes_follow_partial_pops_and_clear_forgets_the_clamps() -> None:
    q = DelayQueue()
    q.push("k", b"123", 1.0)
    q.push("k", b"45", 2.0)
    assert q.pop_due(1.5) == [b"123"]
    assert len(q) == 1 and q.queued_bytes == 2
    assert q.clear() == 1
    assert q.last_due("k") is None and q.next_due() is None
    q.push("k", b"x", 0.5)  # no clamp left from before the clear
    assert q.next_due() == 0.5


def test_a_refused_packet_changes_nothing() -> None:
    q = DelayQueue(max_bytes=4)
    assert q.push("k", b"1234", 1.0)
    assert not q.push("k", b"5", 9.0)
    assert q.last_due("k") == 1.0 and len(q) == 1 and q.queued_bytes == 4
