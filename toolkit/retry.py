"""One polling helper with a deadline, exponential backoff and jitter, used for every wait."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The condition did not hold before the deadline; carries the last value or error seen."""

    def __init__(self, what: str, seconds: float, last: object) -> None:
        self.what, self.seconds, self.last = what, seconds, last
        super().__init__(f"{what}: not ready after {seconds:.0f}s (last: {last})")


def poll(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str = "condition",
    interval: float = 0.25,
    max_interval: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Call `check` until it returns something other than None/False; raise DeadlineExceeded.

    Exceptions listed in `retry_on` count as "not yet" and are remembered as the last
    result, so the error that finally times out says what was seen.
    """
    deadline = time.monotonic() + timeout
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
        time.sleep(min(remaining, delay * random.uniform(0.8, 1.2)))
        delay = min(max_interval, delay * 1.5)
