"""Combined and successive failures, maintenance and `survive:` promises, against an independent oracle.

The oracle is written from Galera's rule, not from kgt's code: it reads each scenario's
events back from its name, replays them on plain sets, and says whether a Primary
component holding data is left. A component stays Primary when its members of the last
Primary component weigh more than half of that component, less the members that left it
gracefully in the same step; crashed and gracefully stopped nodes never come back, and
cut-off regions never merge back within a scenario. For etcd it says whether a group of
regions holds more than half of all the members still running (a clean Galera stop leaves
the host's member running; a crash or a region loss does not), and which regions it holds.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import CATALYST, EXAMPLE, topology_data, write_topology

from toolkit.analysis import combine, promises
from toolkit.analysis.model import Layout
from toolkit.analysis.quorum import single_events
from toolkit.topology import Topology, load
from toolkit.topology.document import TopologyDoc

# --- the oracle -----------------------------------------------------------------------------


@dataclass
class Site:
    """A topology reduced to plain facts: voters (weight, region, holds data) and each region's hosts."""

    regions: list[str]
    weight: dict[str, int]
    region_of: dict[str, str]
    data: dict[str, bool]
    hosts: dict[str, list[str]]
    etcd: dict[str, str]  # member host → its region

    @classmethod
    def of(cls, t: Topology) -> Site:
        weight, region_of, data = {}, {}, {}
        for h in t.hosts:
            if h.has("galera") or h.has("garbd"):
                weight[h.name] = h.settings.galera.weight if h.has("galera") else h.settings.garbd.weight
                region_of[h.name] = h.region
                data[h.name] = h.has("galera")
        hosts = {r.name: [h.name for h in r.hosts] for r in t.regions}
        etcd = {h.name: h.region for h in t.hosts if "etcd" in h.roles}
        return cls([r.name for r in t.regions], weight, region_of, data, hosts, etcd)


def read_events(site: Site, text: str) -> list[tuple[str, Any]]:
    """A step's events from its scenario name."""
    out: list[tuple[str, Any]] = []
    for part in text.split(" + "):
        if m := re.fullmatch(r"split \{(.*)\} \| \{(.*)\}", part):
            out.append(("split", set(m.group(1).split(","))))
        elif part.startswith("lose region "):
            out.append(("region", part.removeprefix("lose region ")))
        elif part.startswith("isolate region "):
            out.append(("isolate", part.removeprefix("isolate region ")))
        elif part.startswith("restart "):
            out.append(("restart", part.removeprefix("restart ")))
        else:
            out.append(("crash", part.removeprefix("lose ")))
    return out


def replay(
    site: Site, step: list[tuple[str, Any]], groups: list[set[str]]
) -> tuple[list[set[str]], set[str], set[str], set[str]]:
    """One step's events: the groups after it, the hosts crashed, stopped cleanly, and the regions lost."""
    crashed, graceful, lost = set(), set(), set()
    for kind, target in step:
        if kind == "crash":
            crashed.add(target)
        elif kind == "restart":
            graceful.add(target)
        elif kind == "region":
            crashed |= set(site.hosts[target])
            lost.add(target)
        else:
            side = {target} if kind == "isolate" else target
            groups = [g for group in groups for g in (group & side, group - side) if g]
    return groups, crashed, graceful - crashed, lost


def oracle(site: Site, steps: list[list[tuple[str, Any]]]) -> bool:
    """Whether a Primary component holding data is left after the steps, in turn."""
    groups = [set(site.regions)]
    gone: set[str] = set()
    last: set[str] | None = set(site.weight)
    for step in steps:
        groups, crashed, graceful, _ = replay(site, step, groups)
        graceful -= gone
        gone |= crashed | graceful
        if last is None:
            continue
        threshold = sum(site.weight[h] for h in last) - sum(site.weight[h] for h in last & graceful)
        new = None
        for group in groups:
            members = {h for h in last if site.region_of[h] in group and h not in gone}
            if members and 2 * sum(site.weight[h] for h in members) > threshold:
                new = members
        last = new
    return last is not None and any(site.data[h] for h in last)


def etcd_oracle(site: Site, steps: list[list[tuple[str, Any]]]) -> tuple[bool, list[str]] | None:
    """Whether some group keeps a majority of the etcd members, and its regions still there (None: no etcd)."""
    if not site.etcd:
        return None
    groups = [set(site.regions)]
    down: set[str] = set()
    lost: set[str] = set()
    for step in steps:
        groups, crashed, _, gone_regions = replay(site, step, groups)
        down |= crashed
        lost |= gone_regions
    for group in groups:
        up = [h for h, r in site.etcd.items() if r in group and h not in down]
        if len(up) > len(site.etcd) / 2:
            return True, [r for r in site.regions if r in group and r not in lost]
    return False, []


def oracle_of(site: Site, scenario: dict[str, Any]) -> bool:
    steps = scenario.get("steps") or [[scenario["name"]]]
    return oracle(site, [read_events(site, " + ".join(step)) for step in steps])


# --- topologies -------------------------------------------------------------------------------


def random_topology(rng: random.Random, directory: Path) -> Topology:
    regions = rng.randint(2, 7)
    layouts: list[Any] = []
    for _ in range(regions):
        nodes = rng.randint(1, 3)
        layout = ["galera"] * nodes + (["garbd"] if rng.random() < 0.15 else [])
        layouts.append(layout)
    data = topology_data(regions=regions, per_region=layouts)
    for region in data["regions"]:
        for host in region["hosts"]:
            key = "galera" if "galera" in host["roles"] else "garbd"
            host[key] = {"weight": rng.randint(0, 3)}
    voters = [host for region in data["regions"] for host in region["hosts"]]
    for host in rng.sample(voters, min(len(voters), rng.choice((0, 1, 3, 5)))):
        host["roles"].append("etcd")
    t = load(write_topology(directory, data))
    if t.total_weight == 0:  # nothing votes: draw again
        return random_topology(rng, directory)
    return t


def json_of(kgt: Any, path: Path, *args: str) -> dict[str, Any]:
    result = kgt("analyze", str(path), "--format", "json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


# --- depth 2 and sequences agree with the oracle ---------------------------------------------


def steps_of(site: Site, scenario: dict[str, Any]) -> list[list[tuple[str, Any]]]:
    steps = scenario.get("steps") or [[scenario["name"]]]
    return [read_events(site, " + ".join(step)) for step in steps]


def check_etcd(site: Site, scenario: dict[str, Any]) -> None:
    want = etcd_oracle(site, steps_of(site, scenario))
    got = scenario.get("etcd")
    if want is None:
        assert got is None, scenario["name"]
        return
    assert got is not None, scenario["name"]
    assert (got["majority"], got["regions"]) == want, f"{scenario['name']}: kgt says etcd {got}"
    assert got["members"] == len(site.etcd)


def check_depth(site: Site, scenarios: list[dict[str, Any]]) -> None:
    for s in scenarios:
        assert s["survives"] is oracle_of(site, s), f"{s['name']}: kgt says survives={s['survives']}"
        check_etcd(site, s)


def check_sequences(site: Site, sequences: list[dict[str, Any]]) -> None:
    for entry in sequences:
        first = entry["first"]
        assert first["survives"] is oracle_of(site, first), first["name"]
        if not first["survives"]:
            assert entry["then"] == []
        for s in entry["then"]:
            assert len(s["steps"]) == 2
            assert s["survives"] is oracle_of(site, s), f"{s['name']}: kgt says survives={s['survives']}"
            check_etcd(site, s)


@pytest.mark.parametrize("path", [EXAMPLE, CATALYST], ids=["example", "catalyst"])
def test_depth_2_and_sequences_of_the_shipped_topologies_agree_with_the_oracle(kgt, path: Path) -> None:  # type: ignore[no-untyped-def]
    site = Site.of(load(path))
    depth = json_of(kgt, path, "--depth", "2")
    check_depth(site, depth["scenarios"])
    kinds = {s["kind"] for s in depth["scenarios"]}
    assert {"maintenance", "node-loss+maintenance", "region-loss+maintenance", "region-isolated+node-loss"} & kinds
    sequence = json_of(kgt, path, "--sequence")
    check_sequences(site, sequence["sequences"])
    assert sequence["budget"].startswith("survives any region loss")


# First events whose every sequence is checked, per random topology (drawn at random; a site of
# 6–7 regions with its splits has over a hundred first events and ten thousand sequences).
FIRSTS = 8


def test_200_random_topologies_agree_with_the_oracle_at_depth_2_and_in_sequence(tmp_path: Path) -> None:
    rng = random.Random(20261201)
    checked = 0
    for n in range(200):
        t = random_topology(rng, tmp_path / f"t{n}")
        site = Site.of(t)
        layout = Layout.of(t)
        outcomes, notes = combine.combinations(layout, 2)
        assert not notes
        pool = single_events(layout, maintenance=True)
        firsts = rng.sample(pool, min(len(pool), FIRSTS))
        pairs = [o for entry in combine.sequences(layout, firsts=firsts) for o in (entry.first, *entry.then)]
        for o in (*outcomes, *pairs):
            steps = [read_events(site, " + ".join(e.name for e in step)) for step in o.steps]
            assert o.survives is oracle(site, steps), f"topology {n}: {o.name}"
            etcd = None if o.etcd is None else (o.etcd.majority, list(o.etcd.regions))
            assert etcd == etcd_oracle(site, steps), f"topology {n}: {o.name}: kgt says etcd {o.etcd}"
            checked += 1
    assert checked > 50_000


def effect(site: Site, events: list[tuple[str, Any]]) -> tuple[Any, ...]:
    """What a combination does, for deduplication: its groups (lost regions out), crashes, clean stops."""
    groups, crashed, graceful, lost = replay(site, events, [set(site.regions)])
    return (frozenset(frozenset(g - lost) for g in groups if g - lost), frozenset(crashed), frozenset(graceful))


def test_depth_2_lists_every_distinct_combination_once(tmp_path: Path) -> None:
    t = load(write_topology(tmp_path, topology_data(regions=4, per_region=[2, 1, 1, ["galera", "garbd"]])))
    site = Site.of(t)
    outcomes, _ = combine.combinations(Layout.of(t), 2)
    listed = [effect(site, read_events(site, o.name)) for o in outcomes]
    assert len(listed) == len(set(listed)), "a combination is listed twice"
    singles = [o.name for o in outcomes if " + " not in o.name]
    expected = {effect(site, read_events(site, a)) for a in singles}
    expected |= {effect(site, read_events(site, f"{a} + {b}")) for a, b in itertools.combinations(singles, 2)}
    assert set(listed) == expected


# --- named cases ------------------------------------------------------------------------------


def test_catalyst_two_regions_at_once_are_fatal_but_one_then_a_node_of_each_survivor_is_survived(kgt) -> None:  # type: ignore[no-untyped-def]
    both = json_of(kgt, CATALYST, "--fail", "nz-por,nz-wlg")
    assert both["steps"][-1]["survives"] is False
    steps = json_of(kgt, CATALYST, "--fail", "lose region nz-por", "--then", "nz-wlg-db1", "--then", "nz-hlz-db1")
    assert [s["survives"] for s in steps["steps"]] == [True, True, True]
    assert steps["steps"][-1]["steps"] == [["lose region nz-por"], ["lose nz-wlg-db1"], ["lose nz-hlz-db1"]]
    # The same three at once are fatal: 4 of 9 is not more than half.
    at_once = json_of(kgt, CATALYST, "--fail", "nz-por,nz-wlg-db1,nz-hlz-db1")
    assert at_once["steps"][-1]["survives"] is False


def test_example_isolation_with_a_restart_elsewhere_is_fatal_and_said_so(kgt) -> None:  # type: ignore[no-untyped-def]
    data = json_of(kgt, EXAMPLE, "--fail", "isolate:r3,restart:r1-db1")
    last = data["steps"][-1]
    assert last["name"] == "isolate region r3 + restart r1-db1"
    assert last["survives"] is False  # r2-db1 alone is 1 of the 2 left after the clean stop: not more than half
    assert last["regions"]["r2"] == {"database": "read-only", "keystone": "read-only"}
    # The restart alone, or the isolation alone, is survived.
    assert json_of(kgt, EXAMPLE, "--fail", "restart:r1-db1")["steps"][-1]["survives"] is True
    text = kgt("analyze", str(EXAMPLE), "--fail", "isolate region r3,restart r1-db1")
    assert "isolate region r3 + restart r1-db1  NO PRIMARY" in text.out


def test_a_clean_stop_is_not_a_failure_but_a_crash_is(tmp_path: Path) -> None:
    # Two nodes: losing one is fatal (1 of 2), stopping it cleanly is not (Galera discounts it).
    t = load(write_topology(tmp_path, topology_data(regions=1, per_region=2)))
    layout = Layout.of(t)
    outcomes = {o.name: o.survives for o in combine.combinations(layout, 2)[0]}
    assert outcomes["lose r1-db1"] is False
    assert outcomes["restart r1-db1"] is True


def test_four_regions_of_one_node_every_two_two_split_is_fatal(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_topology(tmp_path, topology_data(regions=4, per_region=1))
    splits = [s for s in json_of(kgt, path)["scenarios"] if s["kind"] == "split"]
    assert len(splits) == 3
    assert not any(s["survives"] for s in splits)


def test_sequence_table_and_budget_for_people(kgt) -> None:  # type: ignore[no-untyped-def]
    result = kgt("analyze", str(CATALYST), "--sequence")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "after lose region nz-por: then" in result.out
    # 9 voters of weight 1: one at a time, 9 → 8 → … → 2 is each time more than half; 2 → 1 is not.
    assert lines[-1] == (
        "budget: survives any region loss, then any 4 node losses one at a time; "
        "or any 7 node losses one at a time in any order"
    )
    example = kgt("analyze", str(EXAMPLE), "--sequence").out.splitlines()[-1]
    assert example == "budget: survives any region loss; or any 1 node loss one at a time in any order"


def test_depth_table_groups_by_kind_and_verbose_lists_all(kgt) -> None:  # type: ignore[no-untyped-def]
    short = kgt("analyze", str(EXAMPLE), "--depth", "2").out.splitlines()
    assert short[1].startswith("depth 2: 61 scenarios")
    assert any(line.startswith("node-loss+node-loss") and line.endswith("lose r1-db1 + lose r2-db1") for line in short)
    every = kgt("analyze", str(EXAMPLE), "--depth", "2", "-v").out.splitlines()
    assert len(every) == 2 + 61


@pytest.mark.parametrize(
    "args",
    [
        ("--depth", "2", "--sequence"),
        ("--then", "r1-db1"),
        ("--fail", "nowhere"),
        ("--fail", "split:r1+r2+r3"),
        ("--fail", "isolate:r9"),
    ],
)
def test_bad_analyze_options_are_one_line_usage_errors(kgt, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    result = kgt("analyze", str(EXAMPLE), *args)
    assert result.code == 2, result.out
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


# --- survive: promises ---------------------------------------------------------------------------


def with_promises(directory: Path, promises_: list[str], extra_regions: list[dict[str, Any]] = ()) -> Path:  # type: ignore[assignment]
    data = yaml.safe_load(EXAMPLE.read_text())
    data["secrets"] = {"file": "secrets.yaml"}
    data["regions"] += list(extra_regions)
    data["survive"] = promises_
    return write_topology(directory, data)


def test_example_keeps_region_loss(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = kgt("validate", str(with_promises(tmp_path, ["region-loss", "maintenance"])))
    assert result.code == 0, result.err


def test_a_broken_promise_names_a_counterexample_and_a_fix_that_validates_when_applied(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = with_promises(tmp_path / "broken", ["region-loss+node-loss"])
    result = kgt("validate", str(path))
    assert result.code == 1
    line = result.err.strip()
    assert len(line.splitlines()) == 1
    assert re.match(
        rf"{re.escape(str(path))}:\d+: survive\[0\]: promise 'region-loss\+node-loss' not kept: "
        r"lose region r1 \+ lose r2-db1 leaves no Primary component with data; smallest fix: ",
        line,
    ), line
    layout = Layout.of(load(with_promises(tmp_path / "kept", ["region-loss"])))
    fix = promises.fixes(layout, ["region-loss+node-loss"], most=1)[0]
    assert fix.describe(layout.regions) in line
    # Apply it to the file as an operator would: each new site a region with one garbd.
    sites = [
        {
            "name": f"a{i}",
            "subnet": f"10.213.{10 + i}.0/24",
            "hosts": [{"name": f"a{i}-arb1", "address": f"10.213.{10 + i}.11", "roles": ["garbd"]}],
        }
        for i, (region, _, _) in enumerate(fix.add, 1)
        if region not in layout.regions
    ]
    nodes = [(region, i) for i, (region, _, _) in enumerate(fix.add, 1) if region in layout.regions]
    data = yaml.safe_load(path.read_text())
    for region, i in nodes:
        target = next(r for r in data["regions"] if r["name"] == region)
        target["hosts"].append(
            {"name": f"{region}-db{10 + i}", "address": f"10.213.{region[1:]}.{40 + i}", "roles": ["galera"]}
        )
    data["regions"] += sites
    fixed = write_topology(tmp_path / "fixed", data)
    again = kgt("validate", str(fixed))
    assert again.code == 0, again.err


def test_bad_promise_grammar_is_one_line_with_its_place(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = with_promises(tmp_path, ["region-loss++node-loss", "region-lost"])
    result = kgt("validate", str(path))
    assert result.code == 1
    errors = result.err.strip().splitlines()
    assert len(errors) == 2
    assert "survive[0]: 'region-loss++node-loss' is not a promise" in errors[0]
    assert "survive[1]: 'region-lost' is not a failure kind" in errors[1]


def test_promises_are_documented_in_the_schema() -> None:
    schema = TopologyDoc.model_json_schema()
    text = schema["properties"]["survive"]["description"]
    assert "'+'" in text and "'>'" in text and "maintenance" in text


def test_catalyst_keeps_region_loss_then_two_nodes() -> None:
    layout = Layout.of(load(CATALYST))
    assert promises.check(layout, "region-loss>node-loss>node-loss") is None
    broken = promises.check(layout, "region-loss+region-loss")
    assert broken is not None and broken.counterexample.name == "lose region nz-por + lose region nz-wlg"


def test_node_budget_matches_every_order_of_losses_in_the_oracle(tmp_path: Path) -> None:
    rng = random.Random(7)
    for n in range(40):
        t = random_topology(rng, tmp_path / f"t{n}")
        site = Site.of(t)
        voters = list(site.weight)
        if len(voters) > 6:
            continue
        best = 0
        for k in range(1, len(voters) + 1):
            if all(oracle(site, [[("crash", h)] for h in order]) for order in itertools.permutations(voters, k)):
                best = k
            else:
                break
        assert combine.node_budget(Layout.of(t)) == best, (n, site.weight)
