"""toolkit.retry.poll: deadline, retried errors and the stop hook."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from toolkit.errors import DeadlineExceeded, Stopped
from toolkit.retry import poll


def test_returns_the_first_true_value() -> None:
    values = iter([None, False, 0, "ready"])
    assert poll(lambda: next(values), timeout=5, interval=0.01) == 0


def test_deadline_carries_the_last_error() -> None:
    def boom() -> None:
        raise ValueError("not yet")

    with pytest.raises(DeadlineExceeded) as caught:
        poll(boom, timeout=0.2, interval=0.05, what="thing")
    assert not isinstance(caught.value, Stopped)
    assert "ValueError: not yet" in str(caught.value) and caught.value.what == "thing"


def test_stop_ends_the_wait_early_with_the_last_value() -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped) as caught:
        poll(lambda: None, timeout=30, interval=5, what="never", stop=stop.is_set)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2.0  # woke within a slice of the stop, not after the 5 s interval
    assert caught.value.last is None and "stopped" in str(caught.value)


def test_stop_is_not_asked_before_the_first_attempt() -> None:
    assert poll(lambda: "done", timeout=1, stop=lambda: True) == "done"


def test_every_is_a_fixed_pace() -> None:
    calls: list[float] = []

    def check() -> None:
        calls.append(time.monotonic())

    with pytest.raises(DeadlineExceeded):
        poll(check, timeout=0.65, every=0.2, interval=0.01, max_interval=0.01)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert len(calls) >= 3 and all(0.15 <= g <= 0.35 for g in gaps[:-1]), gaps  # not the 0.01 s interval given
