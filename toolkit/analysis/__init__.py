"""Survivability analysis of a topology under Galera's weighted quorum rule."""

from toolkit.analysis.quorum import Analysis, Scenario, analyze

__all__ = ["Analysis", "Scenario", "analyze"]
