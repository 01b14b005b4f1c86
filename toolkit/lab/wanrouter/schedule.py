"""When the router loop wakes: periodic chores and the wait until the next thing is due (pure)."""

from __future__ import annotations

from collections.abc import Iterable


class Ticker:
    """A chore due every *interval* seconds, the first time at once.

    ``due(now)`` says whether to do it now and, if so, books the next time
    (*interval* after *now*, so a late wake-up does not cause a burst).
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next = 0.0

    def due(self, now: float, force: bool = False) -> bool:
        """Whether the chore is due at *now* (always when *force*); if so, book the next one."""
        if not force and now < self.next:
            return False
        self.next = now + self.interval
        return True

    def reset(self) -> None:
        """Make the chore due at the next look, whatever the time."""
        self.next = 0.0


def wait_timeout(now: float, deadlines: Iterable[float | None]) -> float | None:
    """Seconds to wait from *now* until the earliest deadline (0 if one is past).

    ``None`` deadlines (nothing pending) are ignored; with none left the answer
    is ``None``, which ``select`` takes as "until something happens".
    """
    pending = [d for d in deadlines if d is not None]
    if not pending:
        return None
    return max(min(pending) - now, 0.0)
