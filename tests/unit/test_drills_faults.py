"""Faults as data: defaults, bad targets, the prediction per fault, bounds from the configuration."""

from __future__ import annotations

import pytest

from tests.unit.builders import EXAMPLE
from toolkit.drills.backend import transfer_method
from toolkit.drills.faults import HEAL_AFTER, OBSERVE, Fault, derive_bounds, heal_after, predict, resolve
from toolkit.errors import UsageError
from toolkit.topology import load


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    return load(EXAMPLE)


def test_defaults_come_from_the_topology(example) -> None:  # type: ignore[no-untyped-def]
    assert resolve(example, "region-partition") == Fault("region-partition", region="r3")
    assert resolve(example, "node-loss").host == "r3-db1"
    assert resolve(example, "node-loss", host="r1-db1").region == "r1"
    proxy = resolve(example, "proxy-loss", region="r2")
    assert (proxy.host, proxy.kill) == ("r2-proxy1", False)  # MASTER of r2-vip1
    assert resolve(example, "wan-degrade").rtt == 0.2


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("region-partition", {"region": "r9"}, "unknown region"),
        ("node-loss", {"host": "r1-proxy1"}, "not a Galera node"),
        ("proxy-loss", {"region": "r1", "host": "r2-proxy1"}, "not a proxy of region r1"),
        ("keystone-loss", {"host": "r1-db1"}, "takes --region"),
        ("wan-degrade", {"between": ("r1", "r1")}, "two different regions"),
        ("meteor", {}, "unknown drill"),
    ],
)
def test_bad_targets_are_usage_errors(example, kind, args, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=message):
        resolve(example, kind, **args)


def test_fault_round_trips_through_json(example) -> None:  # type: ignore[no-untyped-def]
    fault = resolve(example, "wan-degrade", rtt=0.1, between=("r1", "r2"))
    assert Fault.from_json(fault.to_json()) == fault
    assert fault.describe() == "wan-degrade rtt 100ms between r1,r2"


def test_prediction_follows_kgt_analyze(example) -> None:  # type: ignore[no-untyped-def]
    cut = predict(example, resolve(example, "region-partition", region="r3"))
    assert cut.scenario == "isolate region r3"
    assert cut.nodes == {"r1-db1": "Primary", "r2-db1": "Primary", "r3-db1": "non-Primary"}
    assert cut.regions["r3"] == {"database": "read-only", "keystone": "read-only"}
    lost = predict(example, resolve(example, "region-loss", region="r1"))
    assert lost.nodes["r1-db1"] == "down" and lost.regions["r1"]["database"] == "down"
    node = predict(example, resolve(example, "node-loss", host="r2-db1"))
    assert node.nodes["r2-db1"] == "down" and node.regions["r2"]["database"] == "primary"
    for kind in ("keystone-loss", "proxy-loss", "wan-degrade"):
        healthy = predict(example, resolve(example, kind))
        assert healthy.kind == "healthy" and set(healthy.nodes.values()) == {"Primary"}
        assert all(o == {"database": "primary", "keystone": "writable"} for o in healthy.regions.values())
    assert not cut.flags and not cut.fixes


def test_bounds_are_derived_from_the_rendered_settings(example) -> None:  # type: ignore[no-untyped-def]
    ks = derive_bounds(example, resolve(example, "keystone-loss", region="r1"))
    assert ks.haproxy_detection == 3.0  # inter 1s × fall 3
    assert ks.galera_detection == 12.5  # stock EVS: suspect 5s + install 7.5s
    assert ks.vrrp_failover == pytest.approx(
        0.9 + 0.3 * 116 / 256, abs=1e-3
    )  # 3 × advert_int 0.3 s (VRRPv3) + skew of priority 140
    assert ks.token_gap["r1"] == 4.0 and ks.write_gap["r1"] == 4.0
    proxy = derive_bounds(example, resolve(example, "proxy-loss", region="r2"))
    assert proxy.vip_move == pytest.approx(ks.vrrp_failover + 1, abs=1e-3)
    # The faulted region: a request the moved VIP left behind waits out the client's 2 s timeout
    # (longer than VRRPv3's failover), the reconnect one SYN retransmission (1 s), two slacks.
    assert proxy.token_gap["r2"] == proxy.write_gap["r2"] == pytest.approx(2.0 + 1.0 + 2 * 1.0, abs=1e-3)
    assert proxy.token_gap["r1"] == 4.0  # a region the fault leaves alone
    node = derive_bounds(example, resolve(example, "node-loss", host="r3-db1"))
    assert node.write_gap["r3"] == 12.5 + 3.0 + 1.0 and node.write_gap["r1"] == 13.5


def test_bounds_at_a_wan_round_trip_add_the_failover_round_trips(example) -> None:  # type: ignore[no-untyped-def]
    lan = derive_bounds(example, resolve(example, "region-partition", region="r3"))
    wan = derive_bounds(example, resolve(example, "region-partition", region="r3"), rtt=0.05)
    assert (lan.rtt, wan.rtt) == (0.0, 0.05)
    assert wan.slack == pytest.approx(lan.slack + 5 * 0.05)
    assert wan.write_gap["r1"] == pytest.approx(lan.write_gap["r1"] + 5 * 0.05)
    assert wan.token_gap == {r: pytest.approx(v + 0.25) for r, v in lan.token_gap.items()}
    assert wan.galera_detection == lan.galera_detection  # EVS timeouts come from the topology's hints


def test_default_fault_window_leaves_time_to_watch_a_read_only_region(example) -> None:  # type: ignore[no-untyped-def]
    partition = resolve(example, "region-partition", region="r3")
    b = derive_bounds(example, partition, rtt=0.05)
    assert heal_after(example, partition, rtt=0.05) == pytest.approx(
        b.galera_detection + b.haproxy_detection + b.slack + OBSERVE
    )
    assert heal_after(example, resolve(example, "keystone-loss", region="r1")) == HEAL_AFTER  # nothing read-only


IST_LOG = """== start 2026-11-27T18:00:48Z
WSREP: State transfer required:
WSREP_SST: [INFO] rsync SST started on joiner (20261127 18:00:50.038)
WSREP: ####### IST uuid:acba7647-ea8a-11f1-bfec-daf7c19b856b f: 1721, l: 1890, STRv: 3
WSREP: Prepared IST receiver for 1721-1890, listening at: tcp://10.213.3.11:4568
WSREP_SST: [INFO] rsync IST completed on joiner (20261127 18:00:51.950)
WSREP: SST received
WSREP: IST received: acba7647-ea8a-11f1-bfec-daf7c19b856b:1890
"""
SST_LOG = """== start 2026-11-27T17:47:55Z
WSREP_SST: [INFO] rsync SST started on joiner (20261127 17:47:56.652)
WSREP: ####### IST uuid:00000000-0000-0000-0000-000000000000 f: 0, l: 12, STRv: 3
WSREP_SST: [INFO] rsync SST completed on joiner (20261127 17:47:59.938)
WSREP: SST received
WSREP: IST received: acba7647-ea8a-11f1-bfec-daf7c19b856b:12
"""


def test_transfer_method_reads_the_joiner_log() -> None:
    # MariaDB runs the SST script and logs "SST received" even for an IST.
    assert transfer_method(IST_LOG) == "IST"
    assert transfer_method(SST_LOG) == "SST"
    assert transfer_method(SST_LOG.replace("rsync SST completed on joiner", "")) == "SST"  # zero uuid
    assert transfer_method("WSREP: IST received: x:1\n") == "IST"
    assert transfer_method("nothing here") == "unknown"
