"""`kgt analyze`: single failures (the default), `--depth N`, `--sequence`, `--fail X,Y --then Z`.

The click command lives in `toolkit.cli`; this module turns its options into the analysis
and prints it (`report` for the forms). Exit code 0 whatever the verdict: `kgt validate`
with `survive:` promises is the gate that fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from toolkit.analysis import combine, events, report
from toolkit.analysis.model import Layout
from toolkit.analysis.quorum import analyze
from toolkit.errors import UsageError
from toolkit.topology.model import Topology

Echo = Callable[[str], None]


def split_events(text: str) -> list[str]:
    """`r1-db1,isolate:r3,split {r1,r2} | {r3,r4}` → its events (commas inside braces are a split's)."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    return [part.strip() for part in out if part.strip()]


def parse_steps(layout: Layout, fail: str, then: Sequence[str]) -> list[list[events.Event]]:
    """The what-if's steps: `--fail`'s events at once, then each `--then`."""
    steps = []
    for text in (fail, *then):
        step = [events.parse(part, layout.voting_hosts, layout.regions) for part in split_events(text)]
        if not step:
            raise UsageError(f"'{text}': name at least one failure")
        steps.append(step)
    return steps


def run(
    topology: Topology,
    fmt: str,
    depth: int,
    sequence: bool,
    fail: str | None,
    then: Sequence[str],
    verbose: bool,
    echo: Echo,
) -> None:
    """Analyse and print in the chosen form."""
    if sum((depth > 1, sequence, fail is not None)) > 1:
        raise UsageError("give one of --depth N, --sequence or --fail")
    if then and fail is None:
        raise UsageError("--then goes with --fail")
    layout = Layout.of(topology)
    if fail is not None:
        _what_if(layout, parse_steps(layout, fail, then), fmt, echo)
    elif sequence:
        _sequences(layout, fmt, verbose, echo)
    elif depth <= 1:
        _single(topology, fmt, echo)
    else:
        _combinations(topology, layout, depth, fmt, verbose, echo)


def _head(total_weight: int) -> str:
    return f"total weight {total_weight}; Primary needs more than {total_weight / 2:g}"


def _what_if(layout: Layout, steps: list[list[events.Event]], fmt: str, echo: Echo) -> None:
    """`--fail … --then …`: the outcome after each step."""
    outcomes = combine.what_if(layout, steps)
    if fmt == "json":
        steps_json = [o.scenario.to_json() for o in outcomes]
        echo(json.dumps({"total_weight": layout.total_weight, "steps": steps_json}, indent=2))
        return
    echo(_head(layout.total_weight))
    width = max(len(o.name) for o in outcomes)
    for o in outcomes:
        echo(report.line(o.scenario, width))


def _sequences(layout: Layout, fmt: str, verbose: bool, echo: Echo) -> None:
    """`--sequence`: each first failure, then what it leaves survivable, and the failure budget."""
    entries = combine.sequences(layout)
    budget = combine.budget(layout)
    if fmt == "json":
        sequences = [
            {"first": e.first.scenario.to_json(), "then": [o.scenario.to_json() for o in e.then]} for e in entries
        ]
        echo(json.dumps({"total_weight": layout.total_weight, "budget": budget, "sequences": sequences}, indent=2))
        return
    echo(_head(layout.total_weight))
    for e in entries:
        for text in report.after_first(e, verbose):
            echo(text)
    echo(f"budget: {budget}")


def _combinations(topology: Topology, layout: Layout, depth: int, fmt: str, verbose: bool, echo: Echo) -> None:
    """`--depth N`: every combination of up to N failures, the fixes and the notes."""
    outcomes, notes = combine.combinations(layout, depth)
    fixes = analyze(topology).fixes
    if fmt == "json":
        scenarios = [o.scenario.to_json() for o in outcomes]
        body = {"total_weight": layout.total_weight, "depth": depth, "scenarios": scenarios}
        echo(json.dumps({**body, "fixes": list(fixes), "notes": notes}, indent=2))
        return
    echo(_head(layout.total_weight))
    survived = sum(1 for o in outcomes if o.survives)
    echo(f"depth {depth}: {len(outcomes)} scenarios, {survived} survived, {len(outcomes) - survived} not")
    if verbose:
        width = max(len(o.name) for o in outcomes)
        for o in outcomes:
            echo(report.line(o.scenario, width))
    else:
        for text in report.summary(outcomes):
            echo(text)
    for fix in fixes:
        echo(f"fix: {fix}")
    for note in notes:
        echo(f"note: {note}")


def _single(topology: Topology, fmt: str, echo: Echo) -> None:
    """Today's output: every single failure."""
    result = analyze(topology)
    if fmt == "json":
        echo(json.dumps(result.to_json(), indent=2))
        return
    echo(_head(result.total_weight))
    width = max(len(s.name) for s in result.scenarios)
    for s in result.scenarios:
        echo(report.line(s, width))
    for fix in result.fixes:
        echo(f"fix: {fix}")
    for note in result.notes:
        echo(f"note: {note}")
