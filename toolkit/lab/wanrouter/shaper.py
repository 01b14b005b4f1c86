"""The shaper: for each packet, pass it now, hold it in the delay queue, or drop it (pure)."""

from __future__ import annotations

import dataclasses
import random

from .config import WanConfig
from .delay import DelayQueue
from .regions import classify
from .rules import CLEAR


@dataclasses.dataclass
class ShaperStats:
    """Packet counters of a :class:`Shaper`."""

    passed_local: int = 0  # not between two regions: sent at once
    passed: int = 0  # between regions, nothing to hold it for
    delayed: int = 0  # held in the delay queue
    dropped_loss: int = 0  # lost to the pair's loss rate
    dropped_cut: int = 0  # the pair is cut
    dropped_overflow: int = 0  # the delay queue was full

    def as_dict(self) -> dict[str, int]:
        """Counters as a plain dict."""
        return dataclasses.asdict(self)


class Shaper:
    """Decides for each packet: pass now, hold until due, or drop."""

    def __init__(self, config: WanConfig, rng: random.Random | None = None, queue: DelayQueue | None = None) -> None:
        self.config = config
        self.rng = rng if rng is not None else random.Random(config.seed)
        self.queue = queue if queue is not None else DelayQueue()
        self.stats = ShaperStats()

    def update(self, config: WanConfig) -> None:
        """Switch to a new config; queued packets keep their due times."""
        self.config = config

    def submit(self, packet: bytes, now: float) -> bytes | None:
        """Return *packet* if it is to be sent right away, else ``None``."""
        pair = classify(packet, self.config.regions)
        if pair is None:
            self.stats.passed_local += 1
            return packet
        params = self.config.links.get(pair)
        if params is None:
            params = CLEAR
        if params.cut:
            self.stats.dropped_cut += 1
            return None
        if params.loss_pct > 0.0 and self.rng.random() * 100.0 < params.loss_pct:
            self.stats.dropped_loss += 1
            return None
        if params.delay_ms <= 0.0:
            last = self.queue.last_due(pair)
            if last is None or last <= now:
                self.stats.passed += 1
                return packet
        if self.queue.push(pair, packet, now + params.delay_ms / 1000.0):
            self.stats.delayed += 1
        else:
            self.stats.dropped_overflow += 1
        return None

    def next_due(self) -> float | None:
        """Earliest due time of a held packet, ``None`` if none is held."""
        return self.queue.next_due()

    def pop_due(self, now: float) -> list[bytes]:
        """Held packets due at or before *now*, in release order."""
        return self.queue.pop_due(now)
