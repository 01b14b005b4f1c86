"""Survivability analysis of a topology under Galera's weighted quorum rule."""

from toolkit.analysis.model import Scenario
from toolkit.analysis.quorum import Analysis, analyze

__all__ = ["Analysis", "Scenario", "analyze"]
