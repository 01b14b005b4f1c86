"""Check states with Nagios exit codes and worst-state-wins.

The errors that end a check early (CannotCheck, NothingReachable) live in toolkit.errors.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class State(enum.IntEnum):
    """A check's outcome; the value is the process exit code (Nagios plugin convention)."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        """`OK`, `WARNING`, `CRITICAL` or `UNKNOWN`."""
        return self.name


def worst(states: Iterable[State]) -> State:
    """The highest state by exit code, as nagiosplugin ranks them (UNKNOWN > CRITICAL > WARNING > OK)."""
    return max(states, default=State.OK)


# Error classes (see nodes.classify) that say "the network or the node is down", as
# opposed to "kgt cannot tell" (credentials, privileges, a bug).
NETWORK_ERRORS = frozenset({"unreachable", "timeout", "connection-lost", "deadline"})
