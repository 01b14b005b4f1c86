"""The drill checker: reads only the history and returns pass / fail / unknown with what it measured.

The history's first operation is the drill's plan (process "drill", f "plan": the fault,
`kgt analyze`'s prediction, the bounds from the configuration, the topology facts the
checker needs), then the nemesis's `inject` and `heal`, the monitors' samples, the
workloads' operations and the verify loop's final reads (see `workloads`, `monitor`,
`nemesis`). From those alone it measures

- detection: fault → first Galera view change, first HAProxy server down, VIP moved, first client error;
- failover gaps: per region and stream (writes, tokens issued, tokens validated, dirty
  reads) the longest stretch between two successful operations with failures in between
  (or ≥ `MIN_GAP` without): a run of failures is one gap; a write that lost a
  certification race counts as an answer (the region is up);
- read-only service: in a region the analysis predicts Keystone read-only (cut off from
  the Primary component), the share of tokens issued and validated there from when it
  should be serving read-only (`read_only_service`) until the heal;
- availability per region during the fault (ok over attempts invoked in the window);
- heal: how long the heal took, when every node was Primary/Synced/whole again, when the
  site was healthy again, and how a restarted node rejoined (IST or SST);
- lost writes and the other anomalies of `toolkit.check.checker` (run on the Galera ops);

and checks the expectations listed in `expectations()`. Verdict: fail if any expectation
fails, else unknown if any could not be decided (or the drill was interrupted), else pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from toolkit.check import checker as verify_checker
from toolkit.check.history import Done, Op, pairs
from toolkit.drills.faults import Bounds, Fault, Prediction

MIN_GAP = 1.0  # seconds between two successes that count as a gap even without a failure in between
VERDICT_CODES = {"pass": 0, "fail": 1, "unknown": 2}
GALERA_F = ("incr", "read", "status", "rtt")
CONFLICT = "certification-conflict"


@dataclass(frozen=True)
class Gap:
    """A stretch without success: from the last ok before it to the first ok after it (None: never)."""

    start: float
    end: float | None
    failures: int

    def seconds(self, horizon: float) -> float:
        """Its length, an open gap counted up to `horizon`."""
        return round((self.end if self.end is not None else horizon) - self.start, 3)

    def to_json(self, horizon: float) -> dict[str, Any]:
        """{"start", "end", "seconds", "failures"}."""
        return {
            "start": round(self.start, 3),
            "end": None if self.end is None else round(self.end, 3),
            "seconds": self.seconds(horizon),
            "failures": self.failures,
        }


def gaps(
    ops: Iterable[Done], begin: float, min_gap: float = MIN_GAP, answered: frozenset[str] = frozenset()
) -> list[Gap]:
    """The gaps of one stream of operations, in time order.

    A gap runs from an ok completion (or `begin`, the stream's start) to the next ok
    completion; it counts when an operation failed or stayed unknown in between, or when
    it lasted at least `min_gap`. A stream that never succeeds again ends in an open gap.
    Failures whose error class is in `answered` count as ok: the endpoint answered (a
    write that lost a certification race to another region's).
    """
    ops = list(ops)
    done = sorted((d for d in ops if d.end is not None), key=lambda d: d.t1)
    out: list[Gap] = []
    last_ok, failures = begin, 0
    for d in done:
        if d.type == "ok" or (d.end is not None and d.end.error in answered):
            if failures or d.t1 - last_ok >= min_gap:
                out.append(Gap(last_ok, d.t1, failures))
            last_ok, failures = d.t1, 0
        else:
            failures += 1
    pending = any(d.end is None for d in ops)
    if failures or pending:
        out.append(Gap(last_ok, None, failures))
    return out


def longest(found: list[Gap], lo: float, hi: float, horizon: float) -> Gap | None:
    """The longest gap that overlaps [lo, hi]."""
    overlapping = [g for g in found if g.start < hi and (g.end is None or g.end > lo)]
    return max(overlapping, key=lambda g: g.seconds(horizon), default=None)


def availability(ops: Iterable[Done], lo: float, hi: float) -> dict[str, Any]:
    """Counts of operations invoked in [lo, hi] by outcome, and ok / attempts."""
    counts = {"ok": 0, "fail": 0, "info": 0, "pending": 0}
    for d in ops:
        if lo <= d.t0 <= hi:
            counts[d.type] += 1
    total = sum(counts.values())
    return {**counts, "availability": round(counts["ok"] / total, 4) if total else None}


@dataclass(frozen=True)
class Expectation:
    """One thing the drill expects, and whether the history shows it (None: cannot tell)."""

    name: str
    region: str | None
    expected: str
    observed: str
    ok: bool | None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        return {
            "name": self.name,
            "region": self.region,
            "expected": self.expected,
            "observed": self.observed,
            "ok": self.ok,
        }


@dataclass
class DrillResult:
    """The checker's output; `to_json` is the body of report.json."""

    verdict: str
    summary: str
    plan: dict[str, Any]
    timeline: dict[str, Any]
    observed_nodes: dict[str, str]
    measurements: dict[str, Any]
    expectations: list[Expectation]
    verify: dict[str, Any]
    streams: dict[str, dict[str, list[tuple[float, str]]]] = field(default_factory=dict)
    galera_samples: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    @property
    def code(self) -> int:
        """Exit code: 0 pass, 1 fail, 2 unknown."""
        return VERDICT_CODES[self.verdict]

    def line(self) -> str:
        """The one-line verdict."""
        return f"{self.verdict.upper()}: {self.summary}"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}s"


class _History:
    """The history split into what the checker reads."""

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.done = [Done(s, e) for s, e in pairs(ops)]
        self.end = max((op.time for op in ops), default=0.0)
        plan = next((d for d in self.done if d.start.process == "drill" and d.start.f == "plan"), None)
        if plan is None or not isinstance(plan.value, dict):
            raise ValueError("the history has no drill plan (process 'drill', f 'plan')")
        self.plan: dict[str, Any] = plan.value
        self.fault = Fault.from_json(self.plan["fault"])
        self.prediction = Prediction.from_json(self.plan["prediction"])
        self.bounds = Bounds.from_json(self.plan["bounds"])
        self.topo: dict[str, Any] = self.plan["topology"]
        self.inject = self._one("nemesis", "inject")
        self.heal = self._one("nemesis", "heal")
        self.healthy = self._one("drill", "healthy")
        self.interrupted = self._one("drill", "interrupted")
        self.workload_start = min((d.t0 for d in self.done if d.start.process in self.topo["regions"]), default=0.0)

    def _one(self, process: str, f: str) -> Done | None:
        return next((d for d in self.done if d.start.process == process and d.start.f == f), None)

    def select(self, f: str | tuple[str, ...], process: str | None = None, region: str | None = None) -> list[Done]:
        fs = (f,) if isinstance(f, str) else f
        return [
            d
            for d in self.done
            if d.start.f in fs
            and (process is None or d.start.process == process)
            and (region is None or d.start.region == region)
        ]

    def first_state(self, region: str, state: str, lo: float, hi: float) -> float | None:
        """When every Galera node of `region` had reported `state` (monitor samples in [lo, hi])."""
        nodes = [n for n, r in self.topo["galera_nodes"].items() if r == region]
        times = []
        for node in nodes:
            seen = [
                d.t1
                for d in self.done
                if d.start.f == "galera"
                and d.start.host == node
                and d.end is not None
                and lo <= d.t1 <= hi
                and _node_state(d) == state
            ]
            if not seen:
                return None
            times.append(min(seen))
        return max(times) if times else None

    def writes(self, region: str, conflicts: bool = False) -> list[Done]:
        # A lost certification race means the region answered: not counted in availability
        # (as in `kgt check verify`), and an answer, not a failure, for the gaps.
        return [
            d
            for d in self.select("incr", process=region)
            if conflicts or not (d.end is not None and d.end.error == CONFLICT)
        ]

    def tokens(self, region: str) -> list[Done]:
        """Tokens issued through the region's endpoint."""
        return [d for d in self.select("issue", region=region) if d.start.process.startswith("ks-")]

    def validations(self, region: str) -> list[Done]:
        """Tokens (of every region) validated through the region's endpoint.

        A stream of its own: a validation answered from Keystone's cache must not split a
        run of failed issues into short gaps.
        """
        return [d for d in self.select("validate", region=region) if d.start.process.startswith("ks-")]

    def dirty(self, region: str) -> list[Done]:
        return self.select("dirty-read", process=f"dirty-{region}")


# A region the analysis predicts read-only must answer this share of token requests once it is.
READ_ONLY_AVAILABILITY = 0.95


def read_only_service(h: _History, region: str, bounds: Bounds) -> dict[str, Any]:
    """How a cut-off region's Keystone served while read-only: tokens issued and validated through it.

    Measured from when the region may be expected to serve read-only: its Galera nodes said
    non-Primary (else the fault plus Galera's detection bound), plus HAProxy's detection
    bound (the write listener falls back to the nodes serving dirty reads) and the slack,
    until the heal began.
    """
    assert h.inject is not None
    f1 = h.inject.t1 if h.inject.end else h.inject.t0
    until = h.heal.t0 if h.heal else h.end
    settled = h.first_state(region, "non-Primary", f1, until)
    since = (settled if settled is not None else f1 + bounds.galera_detection) + bounds.haproxy_detection + bounds.slack
    out: dict[str, Any] = {
        "since": round(since - f1, 3),
        "until": round(until - f1, 3),
        "non_primary_at": None if settled is None else round(settled - f1, 3),
    }
    for name, stream in (("tokens", h.tokens(region)), ("validations", h.validations(region))):
        window = [d for d in stream if since <= d.t0 and d.t1 <= until]
        ok = sum(1 for d in window if d.type == "ok")
        out[name] = {"ok": ok, "attempts": len(window), "availability": round(ok / len(window), 4) if window else None}
    return out


def _node_state(d: Done) -> str:
    if d.type != "ok" or not isinstance(d.value, dict):
        return "down"
    return "Primary" if d.value.get("status") == "Primary" else "non-Primary"


def check(ops: Iterable[Op]) -> DrillResult:
    """Judge a drill's history (see the module docstring)."""
    h = _History(list(ops))
    plan, fault, prediction, bounds, topo = h.plan, h.fault, h.prediction, h.bounds, h.topo
    regions: list[str] = list(topo["regions"])
    expected_size = int(topo["expected_size"])
    horizon = h.end
    f0 = h.inject.t0 if h.inject else None
    f1 = h.inject.t1 if h.inject and h.inject.end else f0
    h0 = h.heal.t0 if h.heal else None
    h1 = h.heal.t1 if h.heal and h.heal.end else None
    window_end = h0 if h0 is not None else horizon

    # --- the Galera subset goes to the verify checker as is ---------------------------
    galera_ops = [
        op for op in h.ops if op.f in GALERA_F and (op.process in regions or op.process in ("setup", "final"))
    ]
    verify = verify_checker.check(galera_ops)

    # --- streams per region ---------------------------------------------------------------
    per_region: dict[str, Any] = {}
    streams: dict[str, dict[str, list[tuple[float, str]]]] = {}
    for r in regions:
        entry: dict[str, Any] = {}
        streams[r] = {}
        for name, stream in (
            ("writes", h.writes(r)),
            ("tokens", h.tokens(r)),
            ("validations", h.validations(r)),
            ("dirty_reads", h.dirty(r)),
        ):
            streams[r][name] = [(round(d.t1, 3), d.type) for d in stream if d.end is not None]
            if not stream:
                continue
            if name == "writes":
                every = h.writes(r, conflicts=True)
                found = gaps(every, h.workload_start, answered=frozenset({CONFLICT}))
            else:
                found = gaps(stream, h.workload_start)
            fault_gap = longest(found, f0, horizon, horizon) if f0 is not None else None
            during = longest(found, f0, window_end, horizon) if f0 is not None else None
            after_heal = [d for d in stream if h1 is not None and d.t0 >= h1 and d.type == "ok"]
            lo, hi = (f0, window_end) if f0 is not None else (0.0, horizon)
            entry[name] = {
                **availability(stream, lo, hi),
                "max_gap_fault": None if during is None else during.seconds(horizon),
                "max_gap": None if fault_gap is None else fault_gap.seconds(horizon),
                "gaps": [g.to_json(horizon) for g in found if g.seconds(horizon) >= MIN_GAP or g.failures],
                "first_ok_after_heal": round(min(d.t1 for d in after_heal) - h1, 3) if after_heal and h1 else None,
            }
            if name == "writes":  # answered by a Primary node, lost to a concurrent write on the shared row
                entry[name]["conflicts"] = sum(
                    1 for d in every if lo <= d.t0 <= hi and d.end is not None and d.end.error == CONFLICT
                )
        if prediction.regions.get(r, {}).get("keystone") == "read-only" and h.inject is not None:
            entry["read_only"] = read_only_service(h, r, bounds)
        per_region[r] = entry

    # --- detection ---------------------------------------------------------------------------
    detect: dict[str, float | None] = {"galera": None, "haproxy": None, "vip": None, "client": None}
    vip_move: dict[str, Any] | None = None
    samples = sorted(
        (d for d in h.done if d.start.process.startswith("mon-") and d.end is not None), key=lambda d: d.t1
    )
    if f0 is not None:
        for d in samples:
            if d.t1 < f0 or (h0 is not None and d.t1 > h0) or d.type != "ok":
                continue
            if (
                d.start.f == "galera"
                and detect["galera"] is None
                and isinstance(d.value, dict)
                and (d.value.get("status") != "Primary" or d.value.get("size") != expected_size)
            ):
                detect["galera"] = round(d.t1 - f0, 3)
            elif (
                d.start.f == "haproxy"
                and detect["haproxy"] is None
                and isinstance(d.value, dict)
                and any(v != "UP" for v in d.value.values())
            ):
                detect["haproxy"] = round(d.t1 - f0, 3)
        moved = (h.inject.value or {}).get("vips", []) if fault.kind == "proxy-loss" and h.inject else []
        # Measured from the return of the stop command (the proxy is gone by then), not its
        # start: `docker exec` latency under load is tooling, not failover.
        for d in samples:
            if d.start.f != "vip" or d.type != "ok" or d.t1 < f0 or d.start.host == fault.host:
                continue
            if set(moved) & set(d.value or []):
                detect["vip"] = round(max(0.0, d.t1 - (f1 if f1 is not None else f0)), 3)
                vip_move = {"vips": moved, "from": fault.host, "to": d.start.host, "seconds": detect["vip"]}
                break
        clients = [
            d
            for d in h.done
            if d.end is not None
            and d.type in ("fail", "info")
            and d.t1 >= f0
            and not d.start.process.startswith(("mon-", "nemesis", "drill", "setup", "final"))
        ]
        if clients:
            detect["client"] = round(min(d.t1 for d in clients) - f0, 3)

    # --- node states while faulted, and resync after the heal --------------------------------
    galera = [d for d in samples if d.start.f == "galera"]
    galera_samples: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for d in galera:
        galera_samples[d.start.host].append((round(d.t1, 3), _node_state(d)))
    observed: dict[str, str] = {}
    for node in topo["galera_nodes"]:
        before = [d for d in galera if d.start.host == node and d.t1 <= window_end and (f0 is None or d.t1 >= f0)]
        observed[node] = _node_state(before[-1]) if before else "unknown"
    resync = None
    if h0 is not None:
        latest: dict[str, Done] = {}
        for d in galera:
            latest[d.start.host] = d
            if d.t1 < h0:
                continue
            if len(latest) == len(topo["galera_nodes"]) and all(
                x.t0 >= h0
                and x.type == "ok"
                and isinstance(x.value, dict)
                and x.value.get("status") == "Primary"
                and x.value.get("state") == "Synced"
                and x.value.get("size") == expected_size
                for x in latest.values()
            ):
                resync = round(d.t1 - h0, 3)
                break
    rejoin = ((h.heal.value or {}).get("rejoin") if h.heal and h.heal.type == "ok" else None) or {}
    healthy = None
    if h.healthy is not None and h.healthy.type == "ok" and h0 is not None:
        healthy = round(h.healthy.t1 - h0, 3)
    finals = {
        d.start.host: d.value for d in h.done if d.start.process == "final" and d.start.f == "status" and d.type == "ok"
    }

    measurements = {
        "detect": detect,
        "vip_move": vip_move,
        "heal": {
            "duration": round(h1 - h0, 3) if h0 is not None and h1 is not None else None,
            "resync": resync,
            "healthy": healthy,
            "rejoin": rejoin,
        },
        "regions": per_region,
        "acknowledged_writes": verify.acknowledged,
        "lost_writes": verify.lost,
        "anomalies": [a.to_json() for a in verify.anomalies],
    }
    timeline = {
        "start_wall": h.ops[0].wall if h.ops else None,
        "workload_start": round(h.workload_start, 3),
        "fault_at": None if f0 is None else round(f0, 3),
        "fault_wall": h.inject.start.wall if h.inject else None,
        "fault_injected": None if f1 is None else round(f1, 3),
        "heal_at": None if h0 is None else round(h0, 3),
        "healed": None if h1 is None else round(h1, 3),
        "healthy": None if h.healthy is None or h.healthy.end is None else round(h.healthy.t1, 3),
        "end": round(horizon, 3),
        "interrupted": None if h.interrupted is None else round(h.interrupted.t0, 3),
    }

    exps = expectations(h, prediction, bounds, fault, observed, per_region, measurements, verify, finals, expected_size)
    if h.interrupted is not None:
        # Cut short: only the correctness checks still mean something; the rest is undecided.
        exps = [
            e
            if e.name in CORRECTNESS or e.ok is None
            else Expectation(e.name, e.region, e.expected, f"{e.observed} (interrupted)", None)
            for e in exps
        ]
    verdict = _verdict(exps, h.interrupted is not None, h.inject is not None)
    result = DrillResult(
        verdict, "", plan, timeline, observed, measurements, exps, verify.to_json(), streams, dict(galera_samples)
    )
    result.summary = summarize(result)
    return result


def expectations(
    h: _History,
    prediction: Prediction,
    bounds: Bounds,
    fault: Fault,
    observed: dict[str, str],
    per_region: dict[str, Any],
    m: dict[str, Any],
    verify: verify_checker.VerifyReport,
    finals: dict[str, Any],
    expected_size: int,
) -> list[Expectation]:
    """Every expectation of the drill, each decided from the measurements (see the module docstring)."""
    out: list[Expectation] = []
    add = out.append
    if h.inject is None:
        return [Expectation("fault injected", None, "inject ok", "never injected", None)]
    if h.inject.type != "ok":
        # The fault never fully happened: nothing was tested (unknown, not fail).
        add(
            Expectation(
                "fault injected",
                None,
                "inject ok",
                f"{h.inject.type}: {h.inject.end.message if h.inject.end else 'no completion'}",
                None,
            )
        )
    # 1. the analysis' prediction, node by node, at the end of the fault window
    mismatched = {n: (prediction.nodes.get(n), s) for n, s in observed.items() if prediction.nodes.get(n) != s}
    add(
        Expectation(
            "prediction held",
            None,
            ", ".join(f"{n} {s}" for n, s in prediction.nodes.items()),
            ", ".join(f"{n} {s}" for n, s in observed.items()),
            None if any(s == "unknown" for s in observed.values()) else not mismatched,
        )
    )
    dirty_by_region: dict[str, list[bool | None]] = defaultdict(list)
    for node, on in h.plan.get("dirty_reads", {}).items():
        dirty_by_region[h.plan["topology"]["galera_nodes"][node]].append(on)
    for region, outcome in prediction.regions.items():
        data = per_region.get(region, {})
        writes = data.get("writes")
        if outcome["database"] == "primary" and writes is not None:
            # Answered = acknowledged, or refused by certification (a Primary node took the write and
            # ordered it after a concurrent one: over a slow WAN the far region loses most races).
            gap = writes["max_gap"] or 0.0
            bound = bounds.write_gap.get(region)
            answered = writes["ok"] + writes.get("conflicts", 0)
            races = f", {writes['conflicts']} lost certification races" if writes.get("conflicts") else ""
            add(
                Expectation(
                    "writes continue",
                    region,
                    f"longest write gap ≤ {_fmt(bound)}",
                    f"longest gap {_fmt(gap)}, availability {_pct(writes['availability'])}{races}",
                    bound is not None and gap <= bound and answered > 0,
                )
            )
        elif outcome["database"] == "read-only" and writes is not None:
            f1 = h.inject.t1
            h0 = h.heal.t0 if h.heal else h.end
            acked = [d for d in h.writes(region) if d.type == "ok" and d.t0 >= f1 and d.t1 <= h0]
            add(
                Expectation(
                    "writes rejected",
                    region,
                    "no write acknowledged while cut off",
                    f"{len(acked)} acknowledged, {writes['fail'] + writes['info']} refused/unknown",
                    not acked,
                )
            )
            if any(dirty_by_region.get(region, [])):
                # From when the region's nodes said non-Primary (else the configured detection bound).
                settled = h.first_state(region, "non-Primary", f1, h0)
                since = settled if settled is not None else f1 + bounds.galera_detection
                reads = [d for d in h.dirty(region) if d.t0 >= since and d.t1 <= h0]
                ok = sum(1 for d in reads if d.type == "ok")
                add(
                    Expectation(
                        "dirty reads served",
                        region,
                        "reads answered by the non-Primary node",
                        f"{ok} of {len(reads)} reads ok",
                        None if not reads else ok > 0,
                    )
                )
        tokens = data.get("tokens")
        validations = data.get("validations") or {}
        if outcome["keystone"] == "writable" and tokens is not None:
            gap = max(tokens["max_gap"] or 0.0, validations.get("max_gap") or 0.0)
            bound = bounds.token_gap.get(region)
            add(
                Expectation(
                    "tokens continue",
                    region,
                    f"longest token gap (issue, validate) ≤ {_fmt(bound)}",
                    f"longest gap {_fmt(gap)}, availability {_pct(tokens['availability'])}",
                    bound is not None and gap <= bound and tokens["ok"] > 0,
                )
            )
        if outcome["keystone"] == "read-only" and "read_only" in data:
            add(_read_only_expectation(region, data["read_only"]))
        if outcome["keystone"] in ("writable", "read-only") and tokens is not None:
            rejected = [d for d in h.validations(region) if d.end is not None and d.end.error == "rejected"]
            add(
                Expectation(
                    "valid tokens accepted",
                    region,
                    "no 401/404 for a token just issued",
                    f"{len(rejected)} rejected",
                    not rejected,
                )
            )
    # 2. healed: the site healthy again, every node back, nothing lost
    if h.heal is None or h.heal.type != "ok":
        add(
            Expectation(
                "healed",
                None,
                "heal ok",
                "heal "
                + (h.heal.type if h.heal else "never ran")
                + (f": {h.heal.end.message}" if h.heal and h.heal.end and h.heal.end.message else ""),
                False,
            )
        )
    healthy = m["heal"]["healthy"]
    if h.interrupted is None:
        add(
            Expectation(
                "healthy again",
                None,
                f"healthy ≤ {_fmt(bounds.healthy)} after the heal began",
                _fmt(healthy)
                if healthy is not None
                else "not healthy: "
                + "; ".join(
                    (h.healthy.value or {}).get("problems", [])[:3]
                    if h.healthy and isinstance(h.healthy.value, dict)
                    else []
                ),
                healthy is not None and healthy <= bounds.healthy,
            )
        )
    nodes = h.plan["topology"]["galera_nodes"]
    whole = [
        n
        for n in nodes
        if isinstance(finals.get(n), dict)
        and finals[n].get("status") == "Primary"
        and finals[n].get("state") == "Synced"
        and finals[n].get("size") == expected_size
    ]
    add(
        Expectation(
            "cluster whole",
            None,
            f"every node Primary/Synced, size {expected_size}",
            f"{len(whole)} of {len(nodes)} nodes",
            len(whole) == len(nodes),
        )
    )
    for node, info in m["heal"]["rejoin"].items():
        method = (info or {}).get("method", "unknown")
        add(
            Expectation(
                "rejoin by IST",
                nodes.get(node),
                f"{node} rejoins by IST",
                f"{method}",
                None if method == "unknown" else method in ("IST", "none"),
            )
        )
    if fault.kind == "proxy-loss":
        move = m["vip_move"]
        add(
            Expectation(
                "VIP moved",
                fault.region,
                f"VIP on another proxy ≤ {_fmt(bounds.vip_move)}",
                f"{_fmt(move['seconds'])} to {move['to']}" if move else "never moved",
                move is not None and bounds.vip_move is not None and move["seconds"] <= bounds.vip_move,
            )
        )
    if verify.verdict == "inconclusive":
        add(Expectation("no lost writes", None, "0 lost", verify.summary, None))
    else:
        add(
            Expectation(
                "no lost writes",
                None,
                "0 lost acknowledged writes",
                f"{verify.lost} lost of {verify.acknowledged}",
                verify.lost == 0,
            )
        )
        others = [a for a in verify.anomalies if a.kind != "lost-write"]
        add(
            Expectation(
                "no anomalies",
                None,
                "none of lost-update, divergent, non-primary-write, unexpected-write",
                ", ".join(sorted({a.kind for a in others})) or "none",
                not others,
            )
        )
    return out


def _read_only_expectation(region: str, served: dict[str, Any]) -> Expectation:
    """Tokens issued and validated in a read-only region, from when it is expected to serve."""
    expected = (
        f"≥ {READ_ONLY_AVAILABILITY:.0%} of tokens issued and validated from {served['since']:.1f}s "
        f"after the cut until the heal"
    )
    issued, validated = served["tokens"], served["validations"]
    observed = (
        f"issued {issued['ok']}/{issued['attempts']}, validated {validated['ok']}/{validated['attempts']}"
        f" from {served['since']:.1f}s to {served['until']:.1f}s"
    )
    if not issued["attempts"] or not validated["attempts"]:
        return Expectation(
            "tokens served read-only",
            region,
            expected,
            f"{observed}: no token request in that window (a longer --heal-after decides it)",
            None,
        )
    ok = all(x["availability"] >= READ_ONLY_AVAILABILITY for x in (issued, validated))
    return Expectation("tokens served read-only", region, expected, observed, ok)


CORRECTNESS = ("no lost writes", "no anomalies", "valid tokens accepted", "writes rejected")


def _verdict(exps: list[Expectation], interrupted: bool, injected: bool) -> str:
    if interrupted:
        return "fail" if any(e.ok is False and e.name in CORRECTNESS for e in exps) else "unknown"
    if any(e.ok is False for e in exps):
        return "fail"
    if not injected or any(e.ok is None for e in exps):
        return "unknown"
    return "pass"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def summarize(result: DrillResult) -> str:
    """One line: the fault, whether the prediction held, lost writes, the gaps, the heal."""
    plan = result.plan
    fault = Fault.from_json(plan["fault"])
    prediction = Prediction.from_json(plan["prediction"])
    m = result.measurements
    parts = [fault.describe()]
    if result.timeline.get("interrupted") is not None:
        parts.append(f"interrupted at t={result.timeline['interrupted']:.1f}s, fault healed")
    failed = [e for e in result.expectations if e.ok is False]
    held = next((e for e in result.expectations if e.name == "prediction held"), None)
    if held is not None and held.ok:
        if not prediction.survives:
            parts.append(
                "NO PRIMARY on any side, as predicted — topology flagged"
                + (f" (fix: {prediction.fixes[0]})" if prediction.fixes else "")
            )
        else:
            primary = [n for n, s in result.observed_nodes.items() if s == "Primary"]
            parts.append(f"prediction held (Primary: {', '.join(primary) or 'none'})")
    elif held is not None and held.ok is False and result.timeline.get("interrupted") is None:
        parts.append(f"prediction FAILED (expected {held.expected}; saw {held.observed})")
    parts.append(f"{m['lost_writes']} lost of {m['acknowledged_writes']} acknowledged writes")
    gaps = []
    for r, data in m["regions"].items():
        w = (data.get("writes") or {}).get("max_gap")
        t = max(
            (x for x in ((data.get(k) or {}).get("max_gap") for k in ("tokens", "validations")) if x is not None),
            default=None,
        )
        gaps.append(f"{r} {_fmt(w)}/{_fmt(t)}")
    parts.append("longest gap writes/tokens " + " ".join(gaps))
    for r, data in m["regions"].items():
        served = data.get("read_only")
        if served:
            issued, validated = served["tokens"], served["validations"]
            parts.append(
                f"{r} read-only from {served['since']:.1f}s after the cut: tokens issued "
                f"{_pct(issued['availability'])}, validated {_pct(validated['availability'])}"
            )
    heal = m["heal"]
    parts.append(f"healthy {_fmt(heal['healthy'])} after heal")
    if failed:
        parts.append(
            "failed: " + "; ".join(f"{e.name}{' ' + e.region if e.region else ''} ({e.observed})" for e in failed[:4])
        )
    return "; ".join(parts)
