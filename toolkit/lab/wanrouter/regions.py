"""Regions of the WAN config and the classifier that puts a packet between two of them (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from .errors import ConfigError


class RegionMap:
    """Maps IPv4 addresses (as int) to region names by longest prefix."""

    def __init__(self, regions: Mapping[str, ipaddress.IPv4Network]) -> None:
        nets = sorted(regions.items(), key=lambda kv: kv[1].prefixlen, reverse=True)
        for i, (name_a, net_a) in enumerate(nets):
            for name_b, net_b in nets[i + 1 :]:
                if net_a.overlaps(net_b):
                    raise ConfigError(f"regions {name_a!r} ({net_a}) and {name_b!r} ({net_b}) overlap")
        self.networks: dict[str, ipaddress.IPv4Network] = dict(regions)
        by_len: dict[int, dict[int, str]] = {}
        for name, net in nets:
            by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = name
        self._tables: list[tuple[int, dict[int, str]]] = [
            ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF, table) for plen, table in sorted(by_len.items(), reverse=True)
        ]

    def lookup(self, addr: int) -> str | None:
        """Region containing the address *addr* (an int), or ``None``."""
        for mask, table in self._tables:
            name = table.get(addr & mask)
            if name is not None:
                return name
        return None

    def names(self) -> list[str]:
        """Region names in config order."""
        return list(self.networks)


def parse_regions(raw: object) -> RegionMap:
    """The config's ``regions`` object (name -> IPv4 CIDR) as a :class:`RegionMap`."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("'regions' must be a non-empty object of name -> IPv4 CIDR")
    regions: dict[str, ipaddress.IPv4Network] = {}
    for name, cidr in raw.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"bad region name {name!r}")
        if not isinstance(cidr, str):
            raise ConfigError(f"region {name!r}: CIDR must be a string")
        try:
            regions[name] = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as exc:
            raise ConfigError(f"region {name!r}: {exc}") from exc
    return RegionMap(regions)


def classify(packet: bytes, regions: RegionMap) -> tuple[str, str] | None:
    """Return ``(src_region, dst_region)`` of a raw IPv4 packet.

    ``None`` (pass immediately) for non-IPv4, truncated headers, addresses
    outside every region, or traffic within one region.
    """
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    src = regions.lookup(int.from_bytes(packet[12:16], "big"))
    if src is None:
        return None
    dst = regions.lookup(int.from_bytes(packet[16:20], "big"))
    if dst is None or dst == src:
        return None
    return (src, dst)
