"""Everything the checks judge, measured once from the history: `Facts`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.check import checker as verify_checker
from toolkit.drills.checker.history import DrillHistory
from toolkit.drills.checker.measure import Detection, HealStats, NodeStates, detect, heal_stats, node_states
from toolkit.drills.checker.streams import RegionStats, StreamStats, measure_regions
from toolkit.drills.faults import Bounds, Prediction


@dataclass(frozen=True)
class Facts:
    """The history and what was measured in it: the input of every check."""

    h: DrillHistory
    regions: dict[str, RegionStats]
    timelines: dict[str, dict[str, list[tuple[float, str]]]]  # per region and stream: (t, type)
    detection: Detection
    nodes: NodeStates
    heal: HealStats
    verify: verify_checker.VerifyReport
    finals: dict[str, Any]  # node -> its status after the drill

    @classmethod
    def of(cls, h: DrillHistory) -> Facts:
        """Measure everything once."""
        regions, timelines = measure_regions(h)
        verify = verify_checker.check(h.galera_ops())
        return cls(h, regions, timelines, detect(h), node_states(h), heal_stats(h), verify, h.finals())

    @property
    def bounds(self) -> Bounds:
        """The bounds the drill holds the site to."""
        return self.h.bounds

    @property
    def prediction(self) -> Prediction:
        """What the analysis predicted."""
        return self.h.prediction

    def stream(self, region: str, name: str) -> StreamStats | None:
        """One region's stream (None: it had no operation)."""
        stats = self.regions.get(region)
        return None if stats is None else stats.streams.get(name)

    def measurements(self) -> dict[str, Any]:
        """The report's `measurements`."""
        move = self.detection.vip_move
        return {
            "detect": self.detection.to_json(),
            "vip_move": None if move is None else move.to_json(),
            "heal": self.heal.to_json(),
            "regions": {r: s.to_json() for r, s in self.regions.items()},
            "acknowledged_writes": self.verify.acknowledged,
            "lost_writes": self.verify.lost,
            "anomalies": [a.to_json() for a in self.verify.anomalies],
        }
