"""One polling helper with a deadline, exponential backoff and jitter, used for every wait."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from toolkit.errors import DeadlineExceeded, Stopped

T = TypeVar("T")


def poll(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str = "condition",
    interval: float = 0.25,
    max_interval: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    stop: Callable[[], bool] | None = None,
    every: float | None = None,
) -> T:
    """Call `check` until it returns something other than None/False; raise DeadlineExceeded.

    Exceptions listed in `retry_on` count as "not yet" and are remembered as the last
    result, so the error that finally times out says what was seen. `stop`, when given,
    is asked between attempts and while waiting (every `STOP_SLICE` seconds): once it
    says True, `Stopped` (a DeadlineExceeded) is raised with the last result. `every`: a
    fixed pace instead of the backoff (interval and max_interval both `every` seconds).
    """
    if every is not None:
        interval = max_interval = every
    started = time.monotonic()
    deadline = started + timeout
    delay = interval
    last: object = None
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
            last = value
        except retry_on as exc:
            last = f"{exc.__class__.__name__}: {exc}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(what, timeout, last)
        _sleep(min(remaining, delay * random.uniform(0.8, 1.2)), stop)
        if stop is not None and stop():
            raise Stopped(what, time.monotonic() - started, last)
        delay = min(max_interval, delay * 1.5)


STOP_SLICE = 0.1  # how often a wait asks `stop`


def _sleep(seconds: float, stop: Callable[[], bool] | None) -> None:
    """Sleep `seconds`, or less once `stop()` says True."""
    if stop is None:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while not stop():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(STOP_SLICE, left))
