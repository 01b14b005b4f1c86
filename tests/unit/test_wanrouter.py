"""Unit tests for the pure parts of the WAN router (toolkit/lab/wanrouter/), through its package API."""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from toolkit.lab import wanrouter as wr

REGIONS = {"r1": "10.213.1.0/24", "r2": "10.213.2.0/24", "r3": "10.213.3.0/24"}


def ipv4(src: str, dst: str, payload: bytes = b"", proto: int = 6) -> bytes:
    """A minimal IPv4 header (checksum not needed by the classifier)."""
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return header + payload


def cfg(rules: list[dict[str, Any]] | None = None, **extra: Any) -> wr.WanConfig:
    return wr.parse_config({"regions": REGIONS, "rules": rules or [], **extra})


# -- config -----------------------------------------------------------------


def test_no_rules_means_all_clear() -> None:
    c = cfg()
    assert c.params("r1", "r2") == wr.LinkParams()
    assert c.links == {}
    assert "all pairs clear" in c.summary()


def test_null_between_applies_to_all_pairs_both_directions() -> None:
    c = cfg([{"between": None, "delay_ms": 25}])
    for a in REGIONS:
        for b in REGIONS:
            if a != b:
                assert c.params(a, b).delay_ms == 25.0


def test_later_rule_overrides_named_pair_only_and_only_fields_it_sets() -> None:
    c = cfg(
        [
            {"between": None, "delay_ms": 25.0, "loss_pct": 1.0},
            {"between": ["r3", "r1"], "delay_ms": 80.0},
            {"between": ["r1", "r2"], "cut": True},
        ]
    )
    assert c.params("r1", "r3") == wr.LinkParams(delay_ms=80.0, loss_pct=1.0)
    assert c.params("r3", "r1") == c.params("r1", "r3")
    assert c.params("r2", "r3") == wr.LinkParams(delay_ms=25.0, loss_pct=1.0)
    assert c.params("r2", "r1").cut
    assert c.params("r2", "r1").delay_ms == 25.0


def test_later_null_rule_overrides_earlier_pair_rule() -> None:
    c = cfg([{"between": ["r1", "r2"], "cut": True}, {"between": None, "cut": False}])
    assert not c.params("r1", "r2").cut


def test_cut_region_rules_isolate_one_region() -> None:
    rules = [{"between": None, "delay_ms": 10.0}, *wr.cut_region_rules("r2", REGIONS)]
    c = cfg(rules)
    assert c.params("r1", "r2").cut and c.params("r2", "r3").cut
    assert not c.params("r1", "r3").cut
    assert "r1<->r2 CUT" in c.summary()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"between": ["r1", "r9"], "delay_ms": 1}], "unknown region 'r9'"),
        ([{"between": ["r1", "r1"], "delay_ms": 1}], "same region"),
        ([{"between": ["r1"], "delay_ms": 1}], "between"),
        ([{"between": None, "delay": 1}], "unknown key"),
        ([{"between": None, "delay_ms": -1}], "delay_ms"),
        ([{"between": None, "delay_ms": "5"}], "delay_ms"),
        ([{"between": None, "loss_pct": 101}], "loss_pct"),
        ([{"between": None, "cut": 1}], "cut"),
    ],
)
def test_bad_rules_are_rejected(rules: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(wr.ConfigError, match=message):
        cfg(rules)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "invalid JSON"),
        ({"rules": []}, "regions"),
        ({"regions": {"a": "10.213.1.0/33"}}, "region 'a'"),
        ({"regions": {"a": "10.213.1.1/24"}}, "region 'a'"),
        ({"regions": {"a": "10.213.0.0/16", "b": "10.213.2.0/24"}}, "overlap"),
        ({"regions": REGIONS, "seed": "x"}, "seed"),
        ({"regions": REGIONS, "router": {"tun": "x" * 20}}, "router.tun"),
        ({"regions": REGIONS, "router": {"bogus": 1}}, "unknown key"),
    ],
)
def test_bad_configs_are_rejected(data: Any, message: str) -> None:
    with pytest.raises(wr.ConfigError, match=message):
        wr.parse_config(data)


def test_router_section_and_json_text() -> None:
    text = json.dumps({"regions": REGIONS, "router": {"iface": "eth1", "table": 7}})
    c = wr.parse_config(text)
    assert c.router == wr.RouterSettings(iface="eth1", table=7)


def test_write_and_load_config_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "wan.json"
    data = {"regions": REGIONS, "rules": [{"between": None, "delay_ms": 5}]}
    wr.write_config(path, data)
    assert wr.load_config(path).params("r1", "r3").delay_ms == 5.0
    with pytest.raises(wr.ConfigError):
        wr.write_config(path, {"regions": {}})
    assert json.loads(path.read_text()) == data  # bad write left the file alone
    assert [p.name for p in path.parent.iterdir()] == ["wan.json"]


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(wr.ConfigError, match="cannot read"):
        wr.load_config(tmp_path / "nope.json")


# -- classification -----------------------------------------------------------


def test_classify_cross_region_is_directed() -> None:
    regions = cfg().regions
    assert wr.classify(ipv4("10.213.1.5", "10.213.3.9"), regions) == ("r1", "r3")
    assert wr.classify(ipv4("10.213.3.9", "10.213.1.5"), regions) == ("r3", "r1")


@pytest.mark.parametrize(
    "packet",
    [
        ipv4("10.213.1.5", "10.213.1.6"),  # same region
        ipv4("10.213.1.5", "10.213.200.254"),  # router / unknown
        ipv4("192.0.2.1", "10.213.2.5"),  # outside the lab
        ipv4("10.213.1.5", "10.213.2.6")[:19],  # truncated
        b"\x60" + bytes(39),  # IPv6
        b"",
    ],
)
def test_classify_passes_local_unknown_and_junk(packet: bytes) -> None:
    assert wr.classify(packet, cfg().regions) is None


def test_region_map_longest_prefix() -> None:
    rm = wr.RegionMap(
        {"wide": ipaddress.IPv4Network("10.214.0.0/16"), "narrow": ipaddress.IPv4Network("10.213.9.0/24")}
    )
    assert rm.lookup(int(ipaddress.IPv4Address("10.214.77.1"))) == "wide"
    assert rm.lookup(int(ipaddress.IPv4Address("10.213.9.200"))) == "narrow"
    assert rm.lookup(int(ipaddress.IPv4Address("10.213.8.1"))) is None


# -- delay queue ----------------------------------------------------------------


def test_delay_queue_releases_in_due_order() -> None:
    q = wr.DelayQueue()
    q.push("x", b"x1", 1.050)
    q.push("y", b"y1", 1.010)
    q.push("x", b"x2", 1.060)
    q.push("y", b"y2", 1.010)
    assert q.next_due() == pytest.approx(1.010)
    assert q.pop_due(1.009) == []
    assert q.pop_due(1.010) == [b"y1", b"y2"]
    assert q.next_due() == pytest.approx(1.050)
    assert q.pop_due(2.0) == [b"x1", b"x2"]
    assert q.next_due() is None and len(q) == 0 and q.queued_bytes == 0


def test_delay_queue_never_reorders_a_key_when_delay_drops() -> None:
    q = wr.DelayQueue()
    q.push("k", b"early-long", 10.5)
    q.push("k", b"late-short", 10.1)  # would overtake without clamping
    q.push("other", b"o", 10.1)
    assert q.pop_due(10.2) == [b"o"]
    assert q.pop_due(10.5) == [b"early-long", b"late-short"]


def test_delay_queue_byte_limit() -> None:
    q = wr.DelayQueue(max_bytes=10)
    assert q.push("k", b"12345", 1.0)
    assert q.push("k", b"12345", 1.0)
    assert not q.push("k", b"1", 1.0)
    assert q.queued_bytes == 10
    assert q.clear() == 2 and q.queued_bytes == 0


# -- shaper ---------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_shaper_delays_cross_region_and_passes_local() -> None:
    clock = FakeClock()
    s = wr.Shaper(cfg([{"between": ["r1", "r2"], "delay_ms": 25.0}]))
    local = ipv4("10.213.1.5", "10.213.1.6")
    clear = ipv4("10.213.1.5", "10.213.3.6")
    a = ipv4("10.213.1.5", "10.213.2.6", b"a")
    b = ipv4("10.213.2.6", "10.213.1.5", b"b")
    assert s.submit(local, clock()) == local
    assert s.submit(clear, clock()) == clear
    assert s.submit(a, clock()) is None
    clock.now += 0.005
    assert s.submit(b, clock()) is None
    assert s.next_due() == pytest.approx(1000.025)
    clock.now = 1000.0249
    assert s.pop_due(clock()) == []
    clock.now = 1000.025
    assert s.pop_due(clock()) == [a]
    assert s.next_due() == pytest.approx(1000.030)
    clock.now = 1000.031
    assert s.pop_due(clock()) == [b]
    assert s.stats.as_dict() == {
        "passed_local": 1,
        "passed": 1,
        "delayed": 2,
        "dropped_loss": 0,
        "dropped_cut": 0,
        "dropped_overflow": 0,
    }


def test_shaper_update_to_zero_delay_keeps_flow_order() -> None:
    s = wr.Shaper(cfg([{"between": None, "delay_ms": 50.0}]))
    first = ipv4("10.213.1.5", "10.213.2.6", b"1")
    second = ipv4("10.213.1.5", "10.213.2.6", b"2")
    other_dir = ipv4("10.213.2.6", "10.213.1.5", b"r")
    assert s.submit(first, 0.0) is None
    s.update(cfg([{"between": None, "delay_ms": 0.0}]))
    assert s.submit(second, 0.01) is None  # queued behind `first`
    assert s.submit(other_dir, 0.01) == other_dir  # nothing pending that way
    assert s.pop_due(0.05) == [first, second]
    assert s.submit(second, 0.06) == second  # queue drained: straight through


def test_shaper_cut_drops_both_directions() -> None:
    s = wr.Shaper(cfg(wr.cut_region_rules("r3", REGIONS)))
    assert s.submit(ipv4("10.213.3.1", "10.213.1.1"), 0.0) is None
    assert s.submit(ipv4("10.213.2.1", "10.213.3.1"), 0.0) is None
    p = ipv4("10.213.1.1", "10.213.2.1")
    assert s.submit(p, 0.0) == p
    assert s.stats.dropped_cut == 2 and len(s.queue) == 0


def test_shaper_loss_is_seeded_and_close_to_rate() -> None:
    config = cfg([{"between": None, "loss_pct": 30.0}])
    packet = ipv4("10.213.1.1", "10.213.2.1")

    def outcomes(seed: int) -> list[bool]:
        s = wr.Shaper(config, rng=random.Random(seed))
        return [s.submit(packet, 0.0) is None for _ in range(2000)]

    first = outcomes(42)
    assert first == outcomes(42)
    assert first != outcomes(43)
    assert 0.26 < sum(first) / len(first) < 0.34


def test_shaper_uses_config_seed_by_default() -> None:
    config = cfg([{"between": None, "loss_pct": 50.0}], seed=5)
    packet = ipv4("10.213.1.1", "10.213.2.1")
    runs = []
    for _ in range(2):
        s = wr.Shaper(config)
        runs.append([s.submit(packet, 0.0) is None for _ in range(200)])
        assert s.stats.dropped_loss == sum(runs[-1])
    assert runs[0] == runs[1]


def test_shaper_loss_zero_and_hundred() -> None:
    packet = ipv4("10.213.1.1", "10.213.2.1")
    s = wr.Shaper(cfg([{"between": None, "loss_pct": 100.0}]))
    assert all(s.submit(packet, 0.0) is None for _ in range(100))
    s.update(cfg([{"between": None, "loss_pct": 0.0}]))
    assert all(s.submit(packet, 0.0) == packet for _ in range(100))


def test_shaper_overflow_is_counted() -> None:
    s = wr.Shaper(cfg([{"between": None, "delay_ms": 10.0}]), queue=wr.DelayQueue(max_bytes=30))
    packet = ipv4("10.213.1.1", "10.213.2.1")
    assert s.submit(packet, 0.0) is None
    assert s.submit(packet, 0.0) is None
    assert s.stats.delayed == 1 and s.stats.dropped_overflow == 1


# -- CLI (no privileges needed) ------------------------------------------------


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wan.json"
    wr.write_config(path, {"regions": REGIONS, "rules": [{"between": None, "delay_ms": 3}]})
    assert wr.main(["check", "--config", str(path)]) == 0
    assert "r1<->r2 delay=3ms" in capsys.readouterr().out
    path.write_text("{}")
    assert wr.main(["check", "--config", str(path)]) == 2


def test_config_watcher_reloads_on_change_and_survives_bad_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wan.json"
    wr.write_config(path, {"regions": REGIONS})
    w = wr.ConfigWatcher(path, interval=0.1)
    assert w.poll(0.0) is None  # unchanged
    path.write_text('{"regions": ')  # half-written file
    assert w.poll(0.05) is None  # rate limited: not even looked at
    assert w.poll(0.1) is None
    assert "keeping old config" in capsys.readouterr().err
    assert w.poll(0.2) is None
    assert capsys.readouterr().err == ""  # same bad file is reported once
    wr.write_config(path, {"regions": REGIONS, "rules": [{"between": None, "cut": True}]})
    new = w.poll(0.35)
    assert new is not None and new.params("r1", "r2").cut
    assert w.poll(0.5) is None
