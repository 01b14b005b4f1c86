"""`kgt analyze` output: one JSON form per scenario, and short tables for people.

JSON of a scenario (`Scenario.to_json`; every kind, as `kgt analyze --format json` has always written it;
combinations and sequences add `steps`, the event names of each step):

    {"kind": "node-loss|region-loss|region-isolated|split|maintenance|A+B|A>B",
     "name": str, "components": [{"regions", "hosts", "weight", "primary"}], "survives": bool,
     "regions": {R: {"database": "primary|read-only|down", "keystone": "writable|read-only|down|none"}},
     "steps": [[event name, …], …],          # combinations and sequences only
     "etcd": {"members": int, "majority": bool, "regions": [R]}}   # topologies with etcd members only

`etcd.regions` are the regions on the side that keeps etcd's majority: where `kgt publish` and
the agents' coordinated restarts still work. Galera may survive where etcd does not (and the
other way round); the table says "etcd: NO MAJORITY" then.

`--depth N`: {"total_weight", "depth", "scenarios": [scenario], "fixes", "notes"};
`--sequence`: {"total_weight", "sequences": [{"first": scenario, "then": [scenario]}], "budget"};
`--fail … --then …`: {"total_weight", "steps": [scenario after each step]}.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolkit.analysis.cluster import Outcome
from toolkit.analysis.combine import AfterFirst
from toolkit.analysis.model import Scenario


def line(s: Scenario, width: int) -> str:
    """One scenario for people: its name, verdict, the Primary side and the read-only regions."""
    primary = [",".join(c.regions) or "-" for c in s.components if c.primary and c.data]
    ro = [r for r, o in s.regions.items() if o.database == "read-only"]
    verdict = "survives" if s.survives else "NO PRIMARY"
    detail = f"Primary: {' '.join(primary) or 'none'}"
    if ro:
        detail += f"; read-only: {','.join(ro)}"
    if s.etcd is not None:
        detail += f"; etcd: {','.join(s.etcd.regions)}" if s.etcd.majority else "; etcd: NO MAJORITY"
    return f"{s.name:<{width}}  {verdict:<10}  {detail}"


def summary(outcomes: Iterable[Outcome]) -> list[str]:
    """Scenarios grouped by kind: how many, how many survive, the first one that does not.

    With etcd members, a column counts the scenarios where etcd keeps its majority, and the
    first where Galera survives but etcd does not.
    """
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.kind, []).append(o)
    width = max((len(k) for k in groups), default=4)
    with_etcd = any(o.etcd is not None for members in groups.values() for o in members)
    extra = f"  {'etcd ok':>7}" if with_etcd else ""
    out = [f"{'kind':<{width}}  {'scenarios':>9}  {'survive':>7}{extra}  first not survived"]
    for kind, members in groups.items():
        fatal = next((o.name for o in members if not o.survives), "-")
        survived = sum(1 for o in members if o.survives)
        row = f"{kind:<{width}}  {len(members):>9}  {survived:>7}"
        if with_etcd:
            row += f"  {sum(1 for o in members if o.etcd is not None and o.etcd.majority):>7}"
            etcd_lost = next((o.name for o in members if o.survives and o.etcd and not o.etcd.majority), None)
            if etcd_lost and fatal == "-":
                fatal = f"- (etcd lost: {etcd_lost})"
        out.append(f"{row}  {fatal}")
    return out


def after_first(entry: AfterFirst, verbose: bool) -> list[str]:
    """One first failure and what its second failures do, for people."""
    head = entry.first
    if not head.survives:
        return [f"after {head.name}: NO PRIMARY (nothing more to lose)"]
    fatal = [o for o in entry.then if not o.survives]
    out = [f"after {head.name}: then {len(entry.then) - len(fatal)} of {len(entry.then)} survived"]
    by_kind: dict[str, list[str]] = {}
    for o in fatal:
        by_kind.setdefault(o.steps[-1][0].kind, []).append(o.steps[-1][0].name)
    for kind, names in by_kind.items():
        shown = names if verbose else names[:4]
        more = f" (+{len(names) - len(shown)} more)" if len(names) > len(shown) else ""
        out.append(f"  NO PRIMARY then {kind}: {', '.join(shown)}{more}")
    return out
