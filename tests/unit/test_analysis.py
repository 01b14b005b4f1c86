"""Survivability analysis, checked against an independent oracle of Galera's quorum rule.

The oracle below is written from the rule alone: after a failure each group of voters
that can still talk is Primary iff its weight is more than half of the total weight
(an exact half loses on both sides). It never calls the code under test.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from builders import EXAMPLE, make_topology, topology_data, write_topology

from toolkit.analysis import analyze
from toolkit.analysis.model import Layout
from toolkit.topology import Topology, load
from toolkit.wsrep import is_primary

# --- the oracle ---------------------------------------------------------------------


def weights_by_region(t: Topology) -> dict[str, int]:
    """Region → sum of the weights of its Galera nodes and garbd, read from the model."""
    out = {r.name: 0 for r in t.regions}
    for region in t.regions:
        for host in region.hosts:
            if host.has("galera"):
                out[region.name] += host.settings.galera.weight
            elif host.has("garbd"):
                out[region.name] += host.settings.garbd.weight
    return out


def primary(weight: int, total: int) -> bool:
    return weight * 2 > total


def oracle(t: Topology) -> dict[str, bool]:
    """Scenario name → whether some component keeps Primary and still holds data.

    A component of garbd alone can be Primary by weight, but it has no data: nothing is
    read or written there, so the site does not survive on it.
    """
    w = weights_by_region(t)
    total = sum(w.values())
    data = {r.name: sum(1 for h in r.hosts if h.has("galera")) for r in t.regions}
    all_data = sum(data.values())
    out = {}
    for region in t.regions:
        for host in region.hosts:
            if host.has("galera") or host.has("garbd"):
                own = host.settings.galera.weight if host.has("galera") else host.settings.garbd.weight
                left = all_data - (1 if host.has("galera") else 0)
                out[f"lose {host.name}"] = primary(total - own, total) and left > 0
    for name, weight in w.items():
        out[f"lose region {name}"] = primary(total - weight, total) and all_data - data[name] > 0
    if len(w) > 1:
        for name, weight in w.items():
            out[f"isolate region {name}"] = (primary(weight, total) and data[name] > 0) or (
                primary(total - weight, total) and all_data - data[name] > 0
            )
    return out


def check_against_oracle(t: Topology) -> None:
    expected = oracle(t)
    got = {s.name: s.survives for s in analyze(t).scenarios if s.kind != "split"}
    assert got == expected


def garbd_fix_weight(fixes: tuple[str, ...]) -> int:
    for fix in fixes:
        match = re.match(r"add a garbd with weight (\d+) in a third site", fix)
        if match:
            return int(match.group(1))
    raise AssertionError(f"no garbd fix in {fixes}")


# --- the rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "total", "expected"), [(2, 3, True), (1, 3, False), (2, 4, False), (3, 4, True), (0, 0, False)]
)
def test_is_primary_is_strict_majority(weight: int, total: int, expected: bool) -> None:
    assert is_primary(weight, total) is expected
    assert primary(weight, total) is expected


# --- the three shapes of the issue --------------------------------------------------


def test_example_survives_every_single_region_failure(example: Topology) -> None:
    result = analyze(example)
    check_against_oracle(example)
    region_scenarios = [s for s in result.scenarios if s.kind in ("region-loss", "region-isolated")]
    assert len(region_scenarios) == 6
    assert all(s.survives for s in region_scenarios)
    assert result.fixes == ()


def test_two_regions_do_not_survive_a_region_loss_and_a_fix_is_suggested(tmp_path: Path) -> None:
    t = make_topology(tmp_path, regions=2)
    result = analyze(t)
    check_against_oracle(t)
    assert not any(s.survives for s in result.scenarios if s.kind == "region-loss")
    weight = garbd_fix_weight(result.fixes)
    # The suggested fix, applied and judged by the oracle, survives every region failure.
    data = topology_data(regions=3, per_region=[list(LAB), list(LAB), ["garbd"]], weights={"r3-arb1": weight})
    fixed = load(write_topology(tmp_path / "fixed", data))
    verdicts = oracle(fixed)
    assert all(ok for name, ok in verdicts.items() if "region" in name)


LAB = ("galera+keystone+memcached", "haproxy+keepalived", "haproxy+keepalived")


def test_a_host_with_more_than_half_the_weight_takes_the_cluster_with_its_region(tmp_path: Path) -> None:
    t = make_topology(tmp_path, weights={"r1-db1": 3})  # 3 of 5
    assert t.host("r1-db1").weight * 2 > t.total_weight
    result = analyze(t)
    check_against_oracle(t)
    by_name = {s.name: s for s in result.scenarios}
    assert not by_name["lose region r1"].survives
    assert not by_name["lose r1-db1"].survives
    assert by_name["lose region r2"].survives and by_name["lose region r3"].survives
    assert by_name["isolate region r1"].survives  # r1 alone keeps Primary
    assert [c.regions for c in by_name["isolate region r1"].components if c.primary] == [("r1",)]
    assert result.fixes  # and each suggested fix is checked below
    assert any("pc.weight 1 on region r1's nodes (r1-db1)" in f for f in result.fixes)


def test_suggested_garbd_weight_is_the_smallest_that_works(tmp_path: Path) -> None:
    t = make_topology(tmp_path, weights={"r1-db1": 3})
    weight = garbd_fix_weight(analyze(t).fixes)
    for w in range(1, weight + 1):
        data = topology_data(per_region=[LAB, LAB, LAB, ["garbd"]], regions=4, weights={"r1-db1": 3, "r4-arb1": w})
        fixed = load(write_topology(tmp_path / f"w{w}", data))
        survives = all(ok for name, ok in oracle(fixed).items() if "region" in name)
        assert survives is (w == weight)


def test_exact_half_loses_on_both_sides(tmp_path: Path) -> None:
    t = make_topology(tmp_path, regions=4, per_region=1)
    result = analyze(t)
    check_against_oracle(t)
    split = {s.name: s for s in result.scenarios}["split {r1,r2} | {r3,r4}"]
    assert [c.weight for c in split.components] == [2, 2]
    assert not split.survives
    assert all(o.database == "read-only" for o in split.regions.values())


# --- many random shapes against the oracle ------------------------------------------


def test_random_topologies_match_the_oracle(tmp_path: Path) -> None:
    rng = random.Random(20260101)
    for n in range(25):
        regions = rng.randint(1, 5)
        layouts = [rng.choice([1, 2, 3, ["garbd"], ["galera", "garbd"], ["memcached"]]) for _ in range(regions)]
        if all(layout == ["memcached"] for layout in layouts):
            layouts[0] = 1
        data = topology_data(regions=regions, per_region=layouts)
        for region in data["regions"]:
            for host in region["hosts"]:
                if {"galera", "garbd"} & set(host["roles"]):
                    key = "galera" if "galera" in host["roles"] else "garbd"
                    host[key] = {"weight": rng.randint(0, 4)}
        t = load(write_topology(tmp_path / f"t{n}", data))
        if t.total_weight == 0:
            continue
        check_against_oracle(t)


def test_splits_for_four_or_more_regions_match_the_oracle(tmp_path: Path) -> None:
    t = make_topology(tmp_path, regions=5, per_region=1, weights=[3, 1, 1, 2, 2])
    total = 9
    splits = [s for s in analyze(t).scenarios if s.kind == "split"]
    # r1 and every choice of others that leaves both sides with at least two regions.
    assert len(splits) == 10
    for s in splits:
        sides = re.match(r"split \{(.*)\} \| \{(.*)\}", s.name)
        assert sides
        w = weights_by_region(t)
        left = sum(w[r] for r in sides.group(1).split(","))
        assert s.survives is (primary(left, total) or primary(total - left, total))


# --- what each region sees ----------------------------------------------------------


def test_isolated_region_is_read_only_and_its_keystone_too(example: Topology) -> None:
    s = {s.name: s for s in analyze(example).scenarios}["isolate region r2"]
    assert s.regions["r2"].database == "read-only" and s.regions["r2"].keystone == "read-only"
    assert s.regions["r1"].database == "primary" and s.regions["r1"].keystone == "writable"


def test_lost_region_is_down(example: Topology) -> None:
    s = {s.name: s for s in analyze(example).scenarios}["lose region r3"]
    assert s.regions["r3"].database == "down" and s.regions["r3"].keystone == "down"
    assert list(s.regions) == ["r1", "r2", "r3"]  # file order, every run


def test_region_without_keystone_reports_none(tmp_path: Path) -> None:
    t = make_topology(tmp_path, per_region=1)
    assert {o.keystone for s in analyze(t).scenarios for o in s.regions.values()} == {"none"}


def test_garbd_only_region_cut_off_has_no_database(tmp_path: Path) -> None:
    t = make_topology(tmp_path, per_region=[1, 1, ["garbd"]])
    s = {s.name: s for s in analyze(t).scenarios}["isolate region r3"]
    assert s.survives
    assert s.regions["r3"].database == "down"  # a garbd votes but holds no data


def test_layout_reads_the_topology(example: Topology) -> None:
    layout = Layout.of(example)
    assert layout.total_weight == 3
    assert layout.region_weight("r2") == 1
    assert layout.keystone_regions == frozenset({"r1", "r2", "r3"})


# --- the command --------------------------------------------------------------------


def test_kgt_analyze_example_says_every_region_failure_survives(kgt) -> None:  # type: ignore[no-untyped-def]
    result = kgt("analyze", EXAMPLE)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "total weight 3; Primary needs more than 1.5"
    for r in ("r1", "r2", "r3"):
        assert re.search(rf"^lose region {r}\s+survives", result.out, re.M)
        others = ",".join(x for x in ("r1", "r2", "r3") if x != r)
        assert re.search(
            rf"^isolate region {r}\s+survives\s+Primary: {others}; read-only: {r}; etcd: {others}$", result.out, re.M
        )
    assert "NO PRIMARY" not in result.out and "fix:" not in result.out


def test_kgt_analyze_two_regions_says_no_and_suggests_a_fix(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_topology(tmp_path, topology_data(regions=2))
    result = kgt("analyze", path)
    assert result.code == 0
    assert re.search(r"^lose region r1\s+NO PRIMARY", result.out, re.M)
    assert re.search(r"^fix: add a garbd with weight 1 in a third site", result.out, re.M)
    assert "warning: only 2 regions" in result.err


def test_kgt_analyze_heavy_host(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_topology(tmp_path, topology_data(weights={"r2-db1": 4}))
    result = kgt("analyze", path)
    assert re.search(r"^lose region r2\s+NO PRIMARY", result.out, re.M)
    assert re.search(r"^lose region r1\s+survives", result.out, re.M)
    assert "fix:" in result.out


def test_kgt_analyze_json_schema(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = kgt("analyze", EXAMPLE, "--format", "json")
    data = json.loads(result.out)
    assert set(data) == {"total_weight", "scenarios", "fixes", "notes"}
    assert data["total_weight"] == 3
    for s in data["scenarios"]:
        assert set(s) == {"kind", "name", "components", "survives", "regions", "etcd"}
        assert s["kind"] in {"node-loss", "region-loss", "region-isolated", "split"}
        assert s["etcd"]["members"] == 3 and s["etcd"]["majority"] is True  # one member per region
        for c in s["components"]:
            assert set(c) == {"regions", "hosts", "weight", "primary"}
        for outcome in s["regions"].values():
            assert outcome["database"] in {"primary", "read-only", "down"}
            assert outcome["keystone"] in {"writable", "read-only", "down", "none"}
    assert kgt("analyze", EXAMPLE, "--format", "json").out == result.out


def test_a_site_whose_galera_survives_but_etcd_does_not_is_named(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Three of five etcd members in r1: r1's loss keeps Galera's Primary but not etcd's majority."""
    data = topology_data()
    for host in data["regions"][0]["hosts"]:
        host["roles"].append("etcd")
    for region in data["regions"][1:]:
        region["hosts"][0]["roles"].append("etcd")
    path = write_topology(tmp_path, data)
    result = kgt("analyze", path)
    assert re.search(r"^lose region r1\s+survives\s+Primary: r2,r3; etcd: NO MAJORITY$", result.out, re.M)
    assert re.search(r"^isolate region r1\s+survives\s+Primary: r2,r3; read-only: r1; etcd: r1$", result.out, re.M)
    assert re.search(r"^lose region r2\s+survives\s+Primary: r1,r3; etcd: r1,r3$", result.out, re.M)
    assert "losing region 'r1' leaves etcd without a majority (5 members, 3 in 'r1')" in result.err
    depth = kgt("analyze", path, "--depth", "2")
    assert re.search(r"^region-loss\s+3\s+3\s+2\s+- \(etcd lost: lose region r1\)$", depth.out, re.M)
    scenario = next(s for s in json.loads(kgt("analyze", path, "--format", "json").out)["scenarios"])
    assert scenario["etcd"] == {"members": 5, "majority": True, "regions": ["r1", "r2", "r3"]}


def test_a_topology_without_etcd_reports_no_etcd(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_topology(tmp_path, topology_data())
    data = json.loads(kgt("analyze", path, "--format", "json").out)
    assert all("etcd" not in s for s in data["scenarios"])
    assert "etcd" not in kgt("analyze", path).out


def test_many_regions_skip_splits_with_a_note(tmp_path: Path) -> None:
    from toolkit.analysis.quorum import MAX_SPLIT_REGIONS

    topology = make_topology(tmp_path, regions=MAX_SPLIT_REGIONS + 1)
    result = analyze(topology)
    assert not [s for s in result.scenarios if s.kind == "split"]
    assert len([s for s in result.scenarios if s.kind == "region-isolated"]) == MAX_SPLIT_REGIONS + 1
    assert result.notes and "not enumerated" in result.notes[0]
