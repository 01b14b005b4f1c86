"""The WAN config file: parse and validate it, read it, write it atomically (pure but for the file I/O).

The file is JSON::

    {"regions": {"r1": "10.213.1.0/24", "r2": "10.213.2.0/24"},
     "rules": [{"between": null, "delay_ms": 25.0},
               {"between": ["r1", "r2"], "loss_pct": 1.0, "cut": false}],
     "seed": 1}

``regions`` is read by ``regions.parse_regions``, ``rules`` by ``rules.resolve_rules``;
an optional ``"router"`` object overrides :class:`RouterSettings`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .regions import RegionMap, parse_regions
from .rules import CLEAR, LinkParams, resolve_rules

DEFAULT_CONFIG_PATH = "/run/kgt/wan.json"
IFNAMSIZ = 16  # linux/if.h: interface names are shorter than this


@dataclasses.dataclass(frozen=True)
class RouterSettings:
    """Names and numbers the router setup uses (config key ``router``)."""

    iface: str = "eth0"
    tun: str = "kgtwan0"
    table: int = 100
    priority: int = 100
    mtu: int = 65_535
    txqueuelen: int = 10_000


ROUTER_KEYS = frozenset(f.name for f in dataclasses.fields(RouterSettings))


@dataclasses.dataclass(frozen=True)
class WanConfig:
    """Parsed config: regions plus per directed region pair link params."""

    regions: RegionMap
    links: Mapping[tuple[str, str], LinkParams]
    seed: int | None = None
    router: RouterSettings = RouterSettings()

    def params(self, src: str, dst: str) -> LinkParams:
        """Link parameters from region *src* to region *dst*."""
        return self.links.get((src, dst), CLEAR)

    def summary(self) -> str:
        """One-line human summary (unordered pairs, clear ones folded)."""
        names = self.regions.names()
        parts = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                p = self.params(a, b)
                if not p.is_clear:
                    parts.append(f"{a}<->{b} {p.describe()}")
        if not parts:
            return f"{len(names)} regions, all pairs clear"
        return f"{len(names)} regions; " + "; ".join(parts)


def parse_router(raw: object) -> RouterSettings:
    """The config's optional ``router`` object as :class:`RouterSettings`."""
    if raw is None:
        return RouterSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'router' must be an object")
    unknown = set(raw) - ROUTER_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) in 'router': {sorted(unknown)}")
    kwargs: dict[str, Any] = {}  # checked against each field's type below
    for f in dataclasses.fields(RouterSettings):
        if f.name not in raw:
            continue
        val = raw[f.name]
        if f.type in (str, "str"):
            if not isinstance(val, str) or not val or len(val) >= IFNAMSIZ:
                raise ConfigError(f"router.{f.name} must be an interface name")
        elif isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise ConfigError(f"router.{f.name} must be a positive integer")
        kwargs[f.name] = val
    return RouterSettings(**kwargs)


def parse_config(data: Mapping[str, object] | str | bytes) -> WanConfig:
    """Validate and resolve a config (a mapping or JSON text).

    Raises :class:`ConfigError` on any problem (unknown region, bad value,
    overlapping regions, unknown rule key, ...).
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a JSON object")
    region_map = parse_regions(data.get("regions"))
    links = resolve_rules(data.get("rules", []), region_map.names())
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError("'seed' must be an integer or null")
    return WanConfig(regions=region_map, links=links, seed=seed, router=parse_router(data.get("router")))


def load_config(path: str | os.PathLike[str]) -> WanConfig:
    """Read and parse the config file at *path*."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_config(text)


def write_config(path: str | os.PathLike[str], data: Mapping[str, object]) -> None:
    """Validate *data* and write it atomically (tmp file + rename)."""
    parse_config(data)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
