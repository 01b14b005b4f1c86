"""What a valid topology will not survive: a quorum shape one failure breaks, `survive:` promises not kept.

`validate.check` adds these warnings (and the errors of promises that do not parse) once
the topology has no error, since they read the whole model.
"""

from __future__ import annotations

from toolkit.errors import Problem
from toolkit.topology.loader import LineMap
from toolkit.topology.model import Topology
from toolkit.wsrep import is_primary


def quorum_warnings(topology: Topology, lines: LineMap) -> list[Problem]:
    """Warnings for a quorum shape that cannot survive some single failure."""
    out = []
    total = topology.total_weight
    if len(topology.regions) < 3:
        for region in topology.regions:
            if region.weight and not is_primary(total - region.weight, total):
                out.append(
                    lines.problem(
                        ("regions",),
                        f"only {len(topology.regions)} regions: losing region '{region.name}' "
                        f"(weight {region.weight} of {total}) loses Primary everywhere; "
                        "add a third region (a garbd is enough)",
                        "warning",
                    )
                )
    if total % 2 == 0:
        half = half_partition([r.name for r in topology.regions], [r.weight for r in topology.regions], total // 2)
        what = (
            f"a partition between {{{', '.join(sorted(half))}}} and the rest" if half else "a partition into two halves"
        )
        out.append(
            lines.problem(
                ("regions",),
                f"total Galera weight {total} is even: {what} (weight {total // 2} each) loses Primary on both sides",
                "warning",
            )
        )
    return out


def half_partition(names: list[str], weights: list[int], half: int) -> list[str] | None:
    """The regions on the first region's side of an exact-half split, or None if there is none.

    The side holds `names[0]`, weighs exactly `half` and leaves at least one region out;
    among those it is the one with fewest regions, then first in file order, i.e. the
    first that `itertools.combinations` by growing size would find, found by a subset-sum
    table instead of trying all 2^n groups (30 regions would never finish).
    """
    n = len(names)
    # fits[i][k]: bit s is set when k regions of names[i:] can weigh s in total.
    fits = [[0] * (n + 1) for _ in range(n + 1)]
    fits[n][0] = 1
    for i in range(n - 1, -1, -1):
        for k in range(n - i + 1):
            fits[i][k] = fits[i + 1][k] | ((fits[i + 1][k - 1] << weights[i]) if k else 0)
    for size in range(1, n):
        rest = half - weights[0]
        if rest < 0 or not (fits[1][size - 1] >> rest) & 1:
            continue
        group, start, left = [names[0]], 1, size - 1
        while left:
            # The earliest region that still lets the rest of the group reach the weight.
            j = next(
                j for j in range(start, n) if rest >= weights[j] and (fits[j + 1][left - 1] >> (rest - weights[j])) & 1
            )
            group.append(names[j])
            rest, start, left = rest - weights[j], j + 1, left - 1
        return group
    return None


def promise_problems(topology: Topology, lines: LineMap) -> list[Problem]:
    """`survive:` promises that do not parse, and those the topology does not keep (with a verified fix)."""
    if not topology.survive:
        return []
    # The analysis reads the model this module validates; imported here, once the model is whole.
    from toolkit.analysis import promises
    from toolkit.analysis.model import Layout

    layout = Layout.of(topology)
    out = []
    broken = []
    valid = []
    for i, promise in enumerate(topology.survive):
        try:
            found = promises.check(layout, promise)
        except ValueError as exc:
            out.append(lines.problem(("survive", i), str(exc)))
            continue
        valid.append(promise)
        if found is not None:
            broken.append((i, found))
    if broken:
        fixes = promises.fixes(layout, valid, most=1)
        fix = (
            f"; smallest fix: {fixes[0].describe(layout.regions)}"
            if fixes
            else f"; no fix of up to {promises.MAX_ADDED} added voters or one region's weight keeps it"
        )
        for i, b in broken:
            out.append(
                lines.problem(
                    ("survive", i),
                    f"promise '{b.promise}' not kept: {b.counterexample.name} "
                    f"leaves no Primary component with data{fix}",
                )
            )
    return out
