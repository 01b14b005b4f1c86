"""The topology: one YAML file parsed once into an immutable, validated model."""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import Problem, TopologyError
from toolkit.topology.loader import parse_document, read_yaml
from toolkit.topology.model import Host, Region, Topology, Vip

__all__ = ["Host", "Region", "Topology", "Vip", "load", "load_with_warnings"]


def load_with_warnings(path: str | Path) -> tuple[Topology, list[Problem]]:
    """Parse and validate `path`; raise TopologyError with every error, else return warnings."""
    from toolkit.topology import validate

    source = Path(path)
    data, lines = read_yaml(source)
    doc = parse_document(data, lines)
    topology = Topology.from_document(doc, source)
    problems = validate.check(doc, topology, lines)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise TopologyError(errors)
    return topology, problems


def load(path: str | Path) -> Topology:
    """Parse and validate `path`, ignoring warnings."""
    return load_with_warnings(path)[0]
