"""Small builders for unit tests: topologies written as YAML and loaded, fake secrets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.topologies import replace_tls
from toolkit import secretstore
from toolkit.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "topology" / "example.yaml"
CATALYST = ROOT / "topology" / "catalyst.yaml"
EXAMPLE_SECRETS = ROOT / "tests" / "data" / "example.secrets.yaml"

# The default host layout of a region: one Galera node with Keystone and memcached,
# two proxies sharing the region's VIPs (the shape of topology/example.yaml).
LAB_REGION = ("galera+keystone+memcached", "haproxy+keepalived", "haproxy+keepalived")

_KIND = {"galera": "db", "garbd": "arb", "haproxy": "proxy", "keystone": "api", "memcached": "mc", "dns": "ns"}


@dataclass
class Result:
    """Outcome of one kgt run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def fake_secret_values() -> dict[str, str]:
    """Obviously fake values for every secret kgt knows (keepalived's is 8 characters)."""
    values = {spec.name: f"fake-{spec.name.replace('_', '-')}" for spec in secretstore.SPECS}
    values["keepalived_password"] = "fakekeep"
    return values


def region_hosts(index: int, layout: int | Sequence[str]) -> list[dict[str, Any]]:
    """Host entries of region `index`: `layout` is a number of Galera nodes or role strings."""
    roles_list = ["galera"] * layout if isinstance(layout, int) else list(layout)
    hosts, counts = [], {}
    for n, roles in enumerate(roles_list):
        role_names = roles.split("+")
        kind = _KIND[role_names[0]]
        counts[kind] = counts.get(kind, 0) + 1
        hosts.append(
            {
                "name": f"r{index}-{kind}{counts[kind]}",
                "address": f"10.100.{index}.{11 + n}",
                "roles": role_names,
            }
        )
    return hosts


def topology_data(
    regions: int = 3,
    per_region: int | Sequence[str] | Sequence[int | Sequence[str]] = LAB_REGION,
    weights: Sequence[int | None] | Mapping[str, int] | None = None,
    vips: int = 2,
    rtt: str | float | None = None,
    pairs: Sequence[tuple[str, str, str | float]] = (),
    defaults: dict[str, Any] | None = None,
    name: str = "kgt-test",
) -> dict[str, Any]:
    """A topology as plain data.

    `per_region` is one layout for every region, or a list with one layout per region;
    `weights` is a pc.weight per region (applied to its Galera nodes and garbd) or a
    mapping host name → weight. Regions get `vips` VIPs when they have keepalived hosts.
    """
    layouts: list[int | Sequence[str]]
    if isinstance(per_region, int) or (per_region and isinstance(per_region[0], str)):
        layouts = [per_region] * regions  # type: ignore[list-item]
    else:
        layouts = list(per_region)  # type: ignore[arg-type]
        assert len(layouts) == regions, "one layout per region"
    out: dict[str, Any] = {"name": name, "domain": "kgt.example", "regions": []}
    if rtt is not None or pairs:
        out["wan"] = {}
        if rtt is not None:
            out["wan"]["rtt"] = rtt
        if pairs:
            out["wan"]["pairs"] = [{"between": [a, b], "rtt": t} for a, b, t in pairs]
    if defaults:
        out["defaults"] = defaults
    for i, layout in enumerate(layouts, start=1):
        hosts = region_hosts(i, layout)
        region: dict[str, Any] = {"name": f"r{i}", "subnet": f"10.100.{i}.0/24"}
        if any("keepalived" in h["roles"] for h in hosts):
            region["vips"] = [
                {"name": f"r{i}-vip{v}", "address": f"10.100.{i}.{100 + v - 1}"} for v in range(1, vips + 1)
            ]
        for host in hosts:
            weight = None
            if isinstance(weights, Mapping):
                weight = weights.get(host["name"])
            elif weights is not None:
                weight = weights[i - 1]
            if weight is not None and {"galera", "garbd"} & set(host["roles"]):
                host["galera" if "galera" in host["roles"] else "garbd"] = {"weight": weight}
        region["hosts"] = hosts
        out["regions"].append(region)
    return out


def without_tls(text: str) -> str:
    """A topology's text with its `tls:` section (a top-level block) removed."""
    return replace_tls(text)


def example_text(tls: str | None = None) -> str:
    """topology/example.yaml's text with its `tls:` section replaced by `tls` (None: no TLS)."""
    text = without_tls(EXAMPLE.read_text())
    return f"{tls}\n{text}" if tls else text


def write_topology(directory: Path, data: dict[str, Any] | str, filename: str = "topology.yaml") -> Path:
    """Write a topology (data or YAML text) and a complete fake secrets file beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    secrets = directory / "secrets.yaml"
    if not secrets.exists():
        secretstore.write(secrets, fake_secret_values())
    return path


def make_topology(tmp_path: Path, regions: int = 3, **kwargs: Any) -> Topology:
    """Build a topology with `topology_data`, write it to `tmp_path` and load it."""
    return load(write_topology(tmp_path, topology_data(regions=regions, **kwargs)))


def fake_secrets(path: Path | None = None) -> secretstore.Secrets:
    """A Secrets object with the fake values, without any file."""
    return secretstore.Secrets(path or Path("fake.secrets.yaml"), fake_secret_values())
