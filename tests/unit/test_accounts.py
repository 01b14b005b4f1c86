"""Least-privilege database accounts: exactly the sources each needs, TLS required, no '%'."""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from pathlib import Path

from builders import EXAMPLE_SECRETS, example_text, fake_secrets, make_topology, write_topology

from toolkit import accounts
from toolkit.render import engine
from toolkit.secretstore import read
from toolkit.topology import Topology, load

CREATE = re.compile(r"CREATE USER IF NOT EXISTS '([a-z_]+)'@'([^']+)' IDENTIFIED BY '[^']*'( REQUIRE SSL)?;")


def bootstrap(topology: Topology) -> str:
    files = {f.path: f for f in engine.render(topology, read(EXAMPLE_SECRETS))}
    return files["sql/bootstrap.sql"].content


def created(sql: str) -> dict[str, dict[str, bool]]:
    """user → {source: TLS required} of every CREATE USER in `sql`."""
    out: dict[str, dict[str, bool]] = {}
    for user, source, tls in CREATE.findall(sql):
        out.setdefault(user, {})[source] = bool(tls)
    return out


def test_example_bootstrap_has_no_wildcard_host_and_every_tcp_account_requires_tls(example: Topology) -> None:
    sql = bootstrap(example)
    assert "'%'" not in sql
    users = created(sql)
    proxies = {str(h.address) for h in example.with_role("haproxy")}
    keystones = {str(h.address) for h in example.with_role("keystone")}
    assert users == {
        "kgt_sst": {"localhost": False},
        "kgt_health": {"localhost": False, "10.213.0.1": True},
        "kgt_admin": {"localhost": False, "10.213.0.0/255.255.255.0": True},
        "keystone": dict.fromkeys(proxies | keystones, True),
    }
    # Every CREATE is followed by its GRANT, on the same account.
    for user, sources in users.items():
        for source in sources:
            assert f"TO '{user}'@'{source}'" in sql


def test_grants_are_the_least_each_needs(example: Topology) -> None:
    sql = bootstrap(example)
    assert re.findall(r"GRANT (.+) TO 'kgt_health'@", sql) == ["USAGE ON *.*"] * 2
    assert set(re.findall(r"GRANT (.+) TO 'keystone'@", sql)) == {"ALL PRIVILEGES ON keystone.*"}
    assert "WITH GRANT OPTION" not in sql.replace("'kgt_admin'@'localhost' WITH GRANT OPTION", "").replace(
        "'kgt_admin'@'10.213.0.0/255.255.255.0' WITH GRANT OPTION", ""
    )


def test_without_tls_nothing_requires_ssl(tmp_path: Path) -> None:
    topology = load(write_topology(tmp_path, example_text(None), "example.yaml"))
    sql = bootstrap(topology)
    assert "REQUIRE SSL" not in sql and "'%'" not in sql


def test_admin_from_localhost_only_when_no_admin_networks(tmp_path: Path) -> None:
    topology = make_topology(tmp_path)
    assert topology.firewall.admin_networks is None
    assert accounts.admin_sources(topology) == ("localhost",)
    health = next(a for a in accounts.accounts(topology) if a.user == accounts.HEALTH_USER)
    assert health.sources == ("localhost",)  # no monitoring named: only the local health endpoint


def test_a_wildcard_only_when_the_topology_writes_0_0_0_0_0(tmp_path: Path) -> None:
    text = example_text(None).replace("admin_networks: [10.213.0.0/24]", "admin_networks: [0.0.0.0/0]")
    topology = load(write_topology(tmp_path, text, "example.yaml"))
    assert accounts.admin_sources(topology) == ("localhost", "%")


def test_host_patterns() -> None:
    assert accounts.host_pattern(IPv4Network("10.1.2.3/32")) == "10.1.2.3"
    assert accounts.host_pattern(IPv4Network("10.1.0.0/16")) == "10.1.0.0/255.255.0.0"


def test_verify_account_is_from_proxies_and_monitoring_on_its_schema_only(example: Topology) -> None:
    account = accounts.verify_account(example, "kgt_drill")
    proxies = tuple(str(h.address) for h in example.with_role("haproxy"))
    assert account.sources == (*proxies, "10.213.0.1")
    assert account.grant == "SELECT, INSERT, UPDATE ON kgt_drill.*"
    statements = account.statements("pw")
    assert all("REQUIRE SSL" in s for s in statements if s.startswith("CREATE"))
    assert fake_secrets()[account.secret]  # a secret kgt knows
