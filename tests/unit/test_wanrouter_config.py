"""The WAN router's config file (toolkit/lab/wanrouter/config.py and regions.py)."""

from __future__ import annotations

import json

import pytest

from toolkit.lab.wanrouter.config import RouterSettings, parse_config, parse_router
from toolkit.lab.wanrouter.errors import ConfigError
from toolkit.lab.wanrouter.regions import parse_regions

REGIONS = {"r1": "10.213.1.0/24", "r2": "10.213.2.0/24"}


def test_regions_keep_their_config_order() -> None:
    assert parse_regions({"z": "10.0.2.0/24", "a": "10.0.1.0/24"}).names() == ["z", "a"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "'regions' must be a non-empty object"),
        ({}, "'regions' must be a non-empty object"),
        (["10.0.0.0/24"], "'regions' must be a non-empty object"),
        ({"": "10.0.0.0/24"}, "bad region name ''"),
        ({"a": 10}, "region 'a': CIDR must be a string"),
        ({"a": "fd00::/64"}, "region 'a':"),
    ],
)
def test_bad_regions(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_regions(raw)


def test_router_defaults_and_overrides() -> None:
    assert parse_router(None) == RouterSettings()
    assert parse_router({"tun": "wan1", "mtu": 1500}) == RouterSettings(tun="wan1", mtu=1500)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "'router' must be an object"),
        ({"iface": ""}, "router.iface must be an interface name"),
        ({"iface": 3}, "router.iface must be an interface name"),
        ({"tun": "x" * 16}, "router.tun must be an interface name"),
        ({"table": 0}, "router.table must be a positive integer"),
        ({"mtu": True}, "router.mtu must be a positive integer"),
        ({"priority": 1.5}, "router.priority must be a positive integer"),
    ],
)
def test_bad_router_settings(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_router(raw)


def test_json_bytes_and_the_seed() -> None:
    c = parse_config(json.dumps({"regions": REGIONS, "seed": 3}).encode())
    assert c.seed == 3 and c.links == {} and c.router == RouterSettings()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("[1, 2]", "config must be a JSON object"),
        ({"regions": REGIONS, "seed": True}, "'seed' must be an integer or null"),
        ({"regions": REGIONS, "rules": {}}, "'rules' must be a list"),
    ],
)
def test_bad_configs(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)  # type: ignore[arg-type]


def test_regions_are_checked_before_rules_and_rules_before_the_router() -> None:
    with pytest.raises(ConfigError, match="regions"):
        parse_config({"regions": {}, "rules": "bad", "router": "bad"})
    with pytest.raises(ConfigError, match="rules"):
        parse_config({"regions": REGIONS, "rules": "bad", "router": "bad"})


def test_summary_lists_impaired_pairs_once() -> None:
    c = parse_config({"regions": {**REGIONS, "r3": "10.213.3.0/24"}, "rules": [{"between": ["r3", "r1"], "cut": True}]})
    assert c.summary() == "3 regions; r1<->r3 CUT"
