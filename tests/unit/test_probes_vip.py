"""`kgt probe vip` on a proxy (fake `ip -j addr` output) and site-wide with --all --observe."""

from __future__ import annotations

import json
from pathlib import Path

from test_probes_fakes import example_topology, run

# topology/example.yaml: r1-proxy1 is MASTER for r1-vip1 (10.213.1.100), r1-proxy2 for r1-vip2.
VIP1, VIP2 = "10.213.1.100", "10.213.1.101"


def ip_json(tmp_path: Path, *extra: str) -> Path:
    """`ip -j addr` of r1-proxy1 holding its own address and `extra`."""
    addr_info = [{"family": "inet", "local": "10.213.1.21", "prefixlen": 24, "scope": "global"}]
    addr_info += [{"family": "inet", "local": a, "prefixlen": 32, "scope": "global"} for a in extra]
    addr_info.append({"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"})
    links = [
        {"ifindex": 1, "ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {"ifindex": 2, "ifname": "eth0", "addr_info": addr_info},
    ]
    path = tmp_path / "ip.json"
    path.write_text(json.dumps(links))
    return path


def on_proxy(tmp_path: Path, *held: str) -> object:
    return run(
        "vip",
        str(example_topology(tmp_path)),
        "--host",
        "r1-proxy1",
        "--addr-json",
        str(ip_json(tmp_path, *held)),
    )


def test_holding_exactly_its_master_vips_is_ok(tmp_path: Path) -> None:
    out = on_proxy(tmp_path, VIP1)
    assert out.state == "OK", out.stdout
    assert out.text == "r1-proxy1 holds exactly its MASTER VIPs (r1-vip1)"
    assert out.perf["vips_held"] == {"value": "1", "uom": "", "warn": "", "crit": "", "min": "0", "max": "2"}
    assert out.perf["masters_held"]["max"] == "1"


def test_missing_master_vip_is_warning(tmp_path: Path) -> None:
    out = on_proxy(tmp_path)
    assert out.state == "WARNING", out.stdout
    assert "does not hold r1-vip1 (10.213.1.100) although MASTER for it" in out.text


def test_holding_the_peers_vip_is_warning(tmp_path: Path) -> None:
    out = on_proxy(tmp_path, VIP1, VIP2)
    assert out.state == "WARNING", out.stdout
    assert "holds r1-vip2 (10.213.1.101) whose MASTER is r1-proxy2" in out.text


def test_holding_another_regions_vip_is_critical(tmp_path: Path) -> None:
    out = on_proxy(tmp_path, VIP1, "10.213.2.100")
    assert out.state == "CRITICAL", out.stdout
    assert "holds r2-vip1 (10.213.2.100) of region r2" in out.text


def test_not_a_keepalived_host_is_unknown(tmp_path: Path) -> None:
    out = run("vip", str(example_topology(tmp_path)), "--host", "r1-db1", "--addr-json", str(ip_json(tmp_path)))
    assert out.state == "UNKNOWN", out.stdout
    assert "has no keepalived role" in out.text


def test_unparsable_ip_output_is_unknown(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    out = run("vip", str(example_topology(tmp_path)), "--host", "r1-proxy1", "--addr-json", str(bad))
    assert out.state == "UNKNOWN", out.stdout


def observations(skip: str = "", **overrides: str) -> list[str]:
    held = {
        "r1-proxy1": VIP1,
        "r1-proxy2": VIP2,
        "r2-proxy1": "10.213.2.100",
        "r2-proxy2": "10.213.2.101",
        "r3-proxy1": "10.213.3.100",
        "r3-proxy2": "10.213.3.101",
    }
    held.update(overrides)
    return [arg for host, ips in held.items() if host != skip for arg in ("--observe", f"{host}={ips}")]


def test_all_in_place_is_ok(tmp_path: Path) -> None:
    out = run("vip", str(example_topology(tmp_path)), "--all", *observations())
    assert out.state == "OK", out.stdout
    assert out.text == "all 6 VIPs held once, each by its MASTER"
    assert out.perf["vips_ok"]["value"] == "6"
    assert out.perf["r1-vip1_holders"]["value"] == "1"


def test_vip_held_twice_is_critical(tmp_path: Path) -> None:
    out = run("vip", str(example_topology(tmp_path)), "--all", *observations(**{"r1-proxy2": f"{VIP1},{VIP2}"}))
    assert out.state == "CRITICAL", out.stdout
    assert out.text == "r1-vip1 (10.213.1.100) held twice: r1-proxy1, r1-proxy2"
    assert out.perf["r1-vip1_holders"]["value"] == "2"


def test_vip_held_by_nobody_is_critical(tmp_path: Path) -> None:
    out = run("vip", str(example_topology(tmp_path)), "--all", *observations(**{"r3-proxy2": ""}))
    assert out.state == "CRITICAL", out.stdout
    assert out.text == "r3-vip2 (10.213.3.101) held by nobody"


def test_failed_over_vip_is_warning(tmp_path: Path) -> None:
    out = run(
        "vip",
        str(example_topology(tmp_path)),
        "--all",
        *observations(**{"r2-proxy1": "", "r2-proxy2": "10.213.2.100,10.213.2.101"}),
    )
    assert out.state == "WARNING", out.stdout
    assert out.text == "r2-vip1 (10.213.2.100) held by r2-proxy2, its MASTER r2-proxy1 does not hold it"


def test_local_host_counts_as_an_observation(tmp_path: Path) -> None:
    out = run(
        "vip",
        str(example_topology(tmp_path)),
        "--all",
        *observations(skip="r1-proxy1"),
        "--host",
        "r1-proxy1",
        "--addr-json",
        str(ip_json(tmp_path, VIP1)),
    )
    assert out.state == "OK", out.stdout


def test_missing_observation_is_unknown(tmp_path: Path) -> None:
    out = run("vip", str(example_topology(tmp_path)), "--all", "--observe", f"r1-proxy1={VIP1}")
    assert out.state == "UNKNOWN", out.stdout
    assert out.text.startswith("no observation for r1-proxy2, r2-proxy1")
