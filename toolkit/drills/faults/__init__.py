"""The faults a drill injects: one class per kind (`standard`), what each should do (`analysis`).

A `Fault` names a kind and its target; its class (`kind_of(fault)`, a `FaultKind` of the
registry in `base`) injects and heals it, and says which `kgt analyze` scenario it is and
which bounds hold; `predict` turns it into the outcome the survivability analysis expects,
`derive_bounds` into the time limits a client may see. Nothing here touches a site but
through a `Backend`.
"""

from __future__ import annotations

from toolkit.drills.faults import standard as _standard
from toolkit.drills.faults.analysis import (
    HEAL_AFTER,
    OBSERVE,
    RTTS_PER_FAILOVER,
    SLACK,
    Bounds,
    Prediction,
    derive_bounds,
    heal_after,
    predict,
    resolve,
    resolve_target,
    scenario_name,
)
from toolkit.drills.faults.base import (
    REGISTRY,
    Fault,
    FaultKind,
    GapBounds,
    Limits,
    Target,
    kind_class,
    kind_of,
    register,
    registered,
)

del _standard  # imported for its registrations
KINDS = tuple(REGISTRY)
# The standard set `kgt drill all` runs, in this order.
STANDARD = tuple(name for name, cls in REGISTRY.items() if cls.standard)


def standard_set() -> tuple[str, ...]:
    """The kinds `kgt drill all` runs now (the standard ones registered, in registration order)."""
    return tuple(name for name, cls in REGISTRY.items() if cls.standard)


__all__ = [
    "HEAL_AFTER",
    "KINDS",
    "OBSERVE",
    "REGISTRY",
    "RTTS_PER_FAILOVER",
    "SLACK",
    "STANDARD",
    "Bounds",
    "Fault",
    "FaultKind",
    "GapBounds",
    "Limits",
    "Prediction",
    "Target",
    "derive_bounds",
    "heal_after",
    "kind_class",
    "kind_of",
    "predict",
    "register",
    "registered",
    "resolve",
    "resolve_target",
    "scenario_name",
    "standard_set",
]
