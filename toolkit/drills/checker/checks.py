"""The drill's checks: one property each, composed in a fixed order (Jepsen's `checker/compose`).

A check reads only `Facts` and yields `Expectation`s. `expectations` runs them in order:
the injection, the prediction, per region what its database and Keystone outcome demand,
the heal, the fault kind's own checks, then correctness (lost writes, anomalies).
"""

from __future__ import annotations

from collections.abc import Callable

from toolkit.drills.checker.facts import Facts
from toolkit.drills.checker.history import whole
from toolkit.drills.verdicts import Expectation
from toolkit.drills.verdicts import fmt_seconds as _fmt
from toolkit.drills.verdicts import fmt_share as _pct

# A region the analysis predicts read-only must answer this share of token requests once it is.
READ_ONLY_AVAILABILITY = 0.95
# What still means something when a drill is cut short.
CORRECTNESS = ("no lost writes", "no anomalies", "valid tokens accepted", "writes rejected")

Check = Callable[[Facts], list[Expectation]]
RegionCheck = Callable[[Facts, str, dict[str, str]], Expectation | None]


def fault_injected(c: Facts) -> list[Expectation]:
    """The fault fully happened (else nothing was tested: unknown, not fail)."""
    inject = c.h.inject
    if inject is None or inject.type == "ok":
        return []
    message = inject.end.message if inject.end else "no completion"
    return [Expectation("fault injected", None, "inject ok", f"{inject.type}: {message}", None)]


def prediction_held(c: Facts) -> list[Expectation]:
    """The analysis' prediction, node by node, at the end of the fault window."""
    predicted, observed = c.prediction.nodes, c.nodes.observed
    mismatched = {n for n, s in observed.items() if predicted.get(n) != s}
    return [
        Expectation(
            "prediction held",
            None,
            ", ".join(f"{n} {s}" for n, s in predicted.items()),
            ", ".join(f"{n} {s}" for n, s in observed.items()),
            None if any(s == "unknown" for s in observed.values()) else not mismatched,
        )
    ]


def writes_continue(c: Facts, region: str, outcome: dict[str, str]) -> Expectation | None:
    """A region with a Primary database answers writes, with no gap past its bound.

    Answered = acknowledged, or refused by certification (a Primary node took the write and
    ordered it after a concurrent one: over a slow WAN the far region loses most races).
    """
    writes = c.stream(region, "writes")
    if outcome["database"] != "primary" or writes is None:
        return None
    gap = writes.max_gap or 0.0
    bound = c.bounds.write_gap.get(region)
    races = f", {writes.conflicts} lost certification races" if writes.conflicts else ""
    return Expectation(
        "writes continue",
        region,
        f"longest write gap ≤ {_fmt(bound)}",
        f"longest gap {_fmt(gap)}, availability {_pct(writes.availability)}{races}",
        bound is not None and gap <= bound and writes.ok + (writes.conflicts or 0) > 0,
    )


def writes_rejected(c: Facts, region: str, outcome: dict[str, str]) -> Expectation | None:
    """A region cut off from the Primary component acknowledges no write."""
    writes, h = c.stream(region, "writes"), c.h
    if outcome["database"] != "read-only" or writes is None or h.inject is None:
        return None
    f1, h0 = h.inject.t1, h.heal.t0 if h.heal else h.end
    acked = [d for d in h.writes(region) if d.type == "ok" and d.t0 >= f1 and d.t1 <= h0]
    return Expectation(
        "writes rejected",
        region,
        "no write acknowledged while cut off",
        f"{len(acked)} acknowledged, {writes.refused} refused/unknown",
        not acked,
    )


def dirty_reads_served(c: Facts, region: str, outcome: dict[str, str]) -> Expectation | None:
    """A read-only region with dirty reads on answers them, from when its nodes said non-Primary."""
    h = c.h
    if outcome["database"] != "read-only" or c.stream(region, "writes") is None or h.inject is None:
        return None
    if not h.dirty_reads_on(region):
        return None
    f1, h0 = h.inject.t1, h.heal.t0 if h.heal else h.end
    settled = h.first_state(region, "non-Primary", f1, h0)  # else the configured detection bound
    since = settled if settled is not None else f1 + c.bounds.galera_detection
    reads = [d for d in h.dirty(region) if d.t0 >= since and d.t1 <= h0]
    ok = sum(1 for d in reads if d.type == "ok")
    return Expectation(
        "dirty reads served",
        region,
        "reads answered by the non-Primary node",
        f"{ok} of {len(reads)} reads ok",
        None if not reads else ok > 0,
    )


def tokens_continue(c: Facts, region: str, outcome: dict[str, str]) -> Expectation | None:
    """A region with a writable Keystone issues and validates tokens, with no gap past its bound."""
    tokens, validations = c.stream(region, "tokens"), c.stream(region, "validations")
    if outcome["keystone"] != "writable" or tokens is None:
        return None
    gap = max(tokens.max_gap or 0.0, (validations.max_gap if validations else None) or 0.0)
    bound = c.bounds.token_gap.get(region)
    return Expectation(
        "tokens continue",
        region,
        f"longest token gap (issue, validate) ≤ {_fmt(bound)}",
        f"longest gap {_fmt(gap)}, availability {_pct(tokens.availability)}",
        bound is not None and gap <= bound and tokens.ok > 0,
    )


def tokens_served_read_only(c: Facts, region: str, outcome: dict[str, str]) -> Expectation | None:
    """Tokens issued and validated in a read-only region, from when it is expected to serve."""
    stats = c.regions.get(region)
    served = stats.read_only if stats else None
    if outcome["keystone"] != "read-only" or served is None:
        return None
    expected = (
        f"≥ {READ_ONLY_AVAILABILITY:.0%} of tokens issued and validated from {served.since:.1f}s "
        f"after the cut until the heal"
    )
    issued, validated = served.tokens, served.validations
    observed = (
        f"issued {issued.ok}/{issued.attempts}, validated {validated.ok}/{validated.attempts}"
        f" from {served.since:.1f}s to {served.until:.1f}s"
    )
    if not issued.attempts or not validated.attempts:
        observed += ": no token request in that window (a longer --heal-after decides it)"
        return Expectation("tokens served read-only", region, expected, observed, None)
    ok = all((x.availability or 0.0) >= READ_ONLY_AVAILABILITY for x in (issued, validated))
    return Expectation("tokens served read-only", region, expected, observed, ok)


def valid_tokens_accepted(c: Facts, region: str, outcome: dict[str, str]) -> Expectation | None:
    """A serving Keystone never rejects a token just issued."""
    if outcome["keystone"] not in ("writable", "read-only") or c.stream(region, "tokens") is None:
        return None
    rejected = [d for d in c.h.validations(region) if d.end is not None and d.end.error == "rejected"]
    return Expectation(
        "valid tokens accepted", region, "no 401/404 for a token just issued", f"{len(rejected)} rejected", not rejected
    )


REGION_CHECKS: tuple[RegionCheck, ...] = (
    writes_continue,
    writes_rejected,
    dirty_reads_served,
    tokens_continue,
    tokens_served_read_only,
    valid_tokens_accepted,
)


def regions(c: Facts) -> list[Expectation]:
    """Per region, in the prediction's order, what its outcome demands."""
    found = (check(c, region, outcome) for region, outcome in c.prediction.regions.items() for check in REGION_CHECKS)
    return [e for e in found if e is not None]


def healed(c: Facts) -> list[Expectation]:
    """The heal went through (a retried heal says how many attempts it took)."""
    heal = c.h.heal
    if heal is not None and heal.type == "ok":
        if c.heal.attempts == 1:
            return []
        observed = f"heal ok at attempt {c.heal.attempts} (before: {'; '.join(c.heal.errors)})"
        return [Expectation("healed", None, "heal ok", observed, True)]
    observed = "heal " + (heal.type if heal else "never ran")
    if heal and heal.end and heal.end.message:
        observed += f": {heal.end.message}"
    return [Expectation("healed", None, "heal ok", observed, False)]


def healthy_again(c: Facts) -> list[Expectation]:
    """The site healthy again within its bound after the heal (not asked of an interrupted drill)."""
    h, seconds, bound = c.h, c.heal.healthy, c.bounds.healthy
    if h.interrupted is not None:
        return []
    if seconds is not None:
        observed = _fmt(seconds)
    else:
        problems = h.healthy.value.get("problems", []) if h.healthy and isinstance(h.healthy.value, dict) else []
        observed = "not healthy: " + "; ".join(problems[:3])
    return [
        Expectation(
            "healthy again",
            None,
            f"healthy ≤ {_fmt(bound)} after the heal began",
            observed,
            seconds is not None and seconds <= bound,
        )
    ]


def cluster_whole(c: Facts) -> list[Expectation]:
    """Every node Primary, Synced and in a cluster of every voter after the drill."""
    nodes, size = c.h.galera_nodes, c.h.expected_size
    found = [n for n in nodes if whole(c.finals.get(n), size)]
    return [
        Expectation(
            "cluster whole",
            None,
            f"every node Primary/Synced, size {size}",
            f"{len(found)} of {len(nodes)} nodes",
            len(found) == len(nodes),
        )
    ]


def rejoined_by_ist(c: Facts) -> list[Expectation]:
    """Every node the heal restarted rejoined by IST (or needed no transfer)."""
    out = []
    for node, info in c.heal.rejoin.items():
        method = str((info or {}).get("method", "unknown"))
        ok = None if method == "unknown" else method in ("IST", "none")
        out.append(Expectation("rejoin by IST", c.h.galera_nodes.get(node), f"{node} rejoins by IST", method, ok))
    return out


def fault_specific(c: Facts) -> list[Expectation]:
    """What only this kind of fault expects (`FaultKind.expectations`)."""
    return c.h.kind.expectations(c)


def no_lost_writes(c: Facts) -> list[Expectation]:
    """No acknowledged write lost, and none of the other anomalies of `kgt check verify`."""
    verify = c.verify
    if verify.verdict == "inconclusive":
        return [Expectation("no lost writes", None, "0 lost", verify.summary, None)]
    others = [a for a in verify.anomalies if a.kind != "lost-write"]
    return [
        Expectation(
            "no lost writes",
            None,
            "0 lost acknowledged writes",
            f"{verify.lost} lost of {verify.acknowledged}",
            verify.lost == 0,
        ),
        Expectation(
            "no anomalies",
            None,
            "none of lost-update, divergent, non-primary-write, unexpected-write",
            ", ".join(sorted({a.kind for a in others})) or "none",
            not others,
        ),
    ]


CHECKS: tuple[Check, ...] = (
    fault_injected,
    prediction_held,
    regions,
    healed,
    healthy_again,
    cluster_whole,
    rejoined_by_ist,
    fault_specific,
    no_lost_writes,
)


def expectations(c: Facts) -> list[Expectation]:
    """Every check's expectations, in order; a drill never injected has only that one (undecided)."""
    if c.h.inject is None:
        return [Expectation("fault injected", None, "inject ok", "never injected", None)]
    return [e for check in CHECKS for e in check(c)]


def interrupted(exps: list[Expectation]) -> list[Expectation]:
    """Cut short: only the correctness checks still mean something; the rest is undecided."""
    return [
        e
        if e.name in CORRECTNESS or e.ok is None
        else Expectation(e.name, e.region, e.expected, f"{e.observed} (interrupted)", None)
        for e in exps
    ]
