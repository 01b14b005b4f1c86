"""The delay queue: packets held until their due time, never reordered within a flow (pure)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable


class DelayQueue:
    """Packets held until a due time; FIFO per key (e.g. directed pair).

    A heap of ``(due, seq, packet)``.  A packet's due time is clamped to be
    no earlier than the previous one of the same key, so lowering the delay
    at run time never reorders a flow.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._last_due: dict[Hashable, float] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def queued_bytes(self) -> int:
        """Total size of the queued packets."""
        return self._bytes

    def last_due(self, key: Hashable) -> float | None:
        """Due time of the latest packet pushed under *key* (even if sent)."""
        return self._last_due.get(key)

    def push(self, key: Hashable, packet: bytes, due: float) -> bool:
        """Queue *packet*; ``False`` (not queued) when the byte limit is hit."""
        if self._bytes + len(packet) > self.max_bytes:
            return False
        last = self._last_due.get(key)
        if last is not None and due < last:
            due = last
        self._last_due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), packet))
        self._bytes += len(packet)
        return True

    def next_due(self) -> float | None:
        """Earliest due time in the queue, ``None`` when empty."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[bytes]:
        """Remove and return, in order, every packet due at or before *now*."""
        out: list[bytes] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            packet = heapq.heappop(heap)[2]
            self._bytes -= len(packet)
            out.append(packet)
        return out

    def clear(self) -> int:
        """Drop everything queued; returns how many packets were dropped."""
        n = len(self._heap)
        self._heap.clear()
        self._last_due.clear()
        self._bytes = 0
        return n
