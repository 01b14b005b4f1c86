"""Combined and successive failures: `kgt analyze --depth N | --sequence | --fail X --then Y`.

- `combinations`: every set of up to N simultaneous events (node losses, region losses,
  isolations, splits where `quorum` lists them, and clean stops), deduplicated by what
  they do (a region loss already covers its nodes; a lost region isolated is lost), at
  most `limit` scenarios, with a note when the bound cuts the list.
- `sequences`: for every first event, each second event after the cluster re-formed
  (judged against the component the first left), and `budget`, the failure budget in
  one line.
- `what_if`: one named combination, then more steps in turn.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from toolkit.analysis import cluster
from toolkit.analysis.cluster import Outcome, evaluate
from toolkit.analysis.events import Event
from toolkit.analysis.model import Layout
from toolkit.analysis.quorum import single_events
from toolkit.wsrep import is_primary

MAX_SCENARIOS = 50_000


def _key(layout: Layout, combo: Sequence[Event]) -> cluster.Effect:
    """What a set of events does, with lost regions out of the groups (a lost region isolated is lost)."""
    groups, crashed, graceful = cluster.effect_key(layout, combo)
    lost = frozenset(e.target for e in combo if e.kind == "region-loss")
    return frozenset(g - lost for g in groups if g - lost), crashed, graceful


def combinations(
    layout: Layout, depth: int, splits: bool = True, limit: int = MAX_SCENARIOS
) -> tuple[list[Outcome], list[str]]:
    """Every combination of up to `depth` simultaneous events; (outcomes, notes).

    Depth 1 is today's single failures (`quorum.scenarios`); from depth 2 on, clean stops
    (maintenance) join the failures, alone and in every combination.
    """
    failures = single_events(layout, splits)
    out = [evaluate(layout, [[e]]) for e in failures]
    if depth <= 1:
        return out, []
    pool = single_events(layout, splits, maintenance=True)
    seen = {_key(layout, [e]) for e in failures}
    for e in pool[len(failures) :]:
        seen.add(_key(layout, [e]))
        out.append(evaluate(layout, [[e]]))
    notes: list[str] = []
    for size in range(2, depth + 1):
        for combo in itertools.combinations(pool, size):
            key = _key(layout, combo)
            if key in seen:
                continue
            seen.add(key)
            if len(out) >= limit:
                notes.append(
                    f"more than {limit} scenarios: the list stops there (combinations of {size} "
                    f"events and deeper were not all analysed)"
                )
                return out, notes
            out.append(evaluate(layout, [list(combo)]))
    return out, notes


@dataclass(frozen=True)
class AfterFirst:
    """Every second event after one first event, each judged after the cluster re-formed."""

    first: Outcome
    then: tuple[Outcome, ...]  # empty when the first is not survived: nothing is left to lose

    @property
    def survived(self) -> tuple[Outcome, ...]:
        """The second events the site survives."""
        return tuple(s for s in self.then if s.survives)


def sequences(layout: Layout, splits: bool = True, firsts: Sequence[Event] | None = None) -> list[AfterFirst]:
    """For every first event (failures and clean stops; or only `firsts`), the outcome of every other after it."""
    pool = single_events(layout, splits, maintenance=True)
    out = []
    for first in pool if firsts is None else firsts:
        head = evaluate(layout, [[first]])
        if not head.survives:
            out.append(AfterFirst(head, ()))
            continue
        alone = _key(layout, [first])
        then = tuple(
            evaluate(layout, [[first], [second]])
            for second in pool
            if second != first and _key(layout, [first, second]) != alone
        )
        out.append(AfterFirst(head, then))
    return out


def node_budget(layout: Layout, state: cluster.State | None = None) -> int:
    """How many voters can crash one at a time, in any order, and a Primary component with data stays.

    The worst order loses the heaviest voter last, after the next heaviest: so k losses are
    survived in any order when, for every j ≤ k, the j heaviest lost with the heaviest last
    still leave more than half (and a data node).
    """
    state = state or cluster.State.initial(layout)
    if state.primary is None:
        return 0
    members = sorted(state.members(layout, state.primary), key=lambda v: -v.weight)
    total = sum(v.weight for v in members)
    data_left = sum(1 for v in members if v.data)
    for k in range(1, len(members) + 1):
        chosen = members[:k]
        heaviest, before = chosen[0], sum(v.weight for v in chosen[1:])
        # The last loss is judged against what the earlier ones left.
        if not is_primary(total - before - heaviest.weight, total - before):
            return k - 1
        # Losing the data nodes first leaves only garbd: also fatal.
        if data_left - min(k, data_left) == 0:
            return k - 1
    return len(members)


def budget(layout: Layout) -> str:
    """The failure budget in one line, e.g. "survives any region loss, then any 1 node loss one at a time;
    or any 4 node losses one at a time in any order"."""
    nodes = node_budget(layout)
    alone = f"any {nodes} node loss{'es' if nodes != 1 else ''} one at a time in any order"
    losses = [evaluate(layout, [[e]]) for e in single_events(layout, splits=False) if e.kind == "region-loss"]
    fatal = [s.name for s in losses if not s.survives]
    if len(layout.regions) < 2:
        return f"survives {alone}" if nodes else "survives no node loss"
    if fatal:
        head = f"does not survive every region loss ({fatal[0]} is fatal)"
        return f"{head}; survives {alone}" if nodes else f"{head}; survives no node loss"
    after = min(node_budget(layout, s.state) for s in losses)
    then = f", then any {after} node loss{'es' if after != 1 else ''} one at a time" if after else ""
    return f"survives any region loss{then}; or {alone}"


def what_if(layout: Layout, steps: Sequence[Sequence[Event]]) -> list[Outcome]:
    """The outcome after each step of a named what-if: the first step's events at once, then each next."""
    return [evaluate(layout, steps[:i]) for i in range(1, len(steps) + 1)]
