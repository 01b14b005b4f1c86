"""The site's database accounts: who each is, from exactly which addresses, with what grant.

One table, read by the rendered `sql/bootstrap.sql` and by `kgt check verify` (which
creates its own user through kgt_admin):

| user        | from                                                        | grant                          |
|-------------|-------------------------------------------------------------|--------------------------------|
| kgt_sst     | localhost (mariabackup runs on the donor itself)            | RELOAD, PROCESS, LOCK TABLES…  |
| kgt_health  | localhost (`kgt health serve`), the monitoring networks     | USAGE                          |
| kgt_admin   | localhost, the admin networks (`firewall.admin_networks`)   | ALL WITH GRANT OPTION          |
| keystone    | every proxy (HAProxy forwards MySQL in TCP mode, so a node  | ALL ON keystone.*              |
|             | sees the proxy's address), every Keystone host (direct when |                                |
|             | its region has no proxy)                                    |                                |
| kgt_verify  | every proxy (checks through the VIPs), monitoring networks  | SELECT, INSERT, UPDATE on its  |
|             |                                                             | schemas                        |

A network is written as MariaDB's `address/netmask` host (a single address as itself):
`skip_name_resolve` is on, so no host name is ever matched. No account is `'%'` unless
the topology lists 0.0.0.0/0 itself. On a TLS site every account that connects over TCP
is created `REQUIRE SSL` (and the server sets `require_secure_transport`); the localhost
ones connect over the local socket. kgt_health is not granted to the proxies: HAProxy
checks the health endpoint over HTTP, never MySQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from toolkit.topology.model import Topology

SST_USER = "kgt_sst"
HEALTH_USER = "kgt_health"
ADMIN_USER = "kgt_admin"
VERIFY_USER = "kgt_verify"
KEYSTONE_USER = "keystone"
LOCALHOST = "localhost"
# The secret holding each account's password (toolkit.secretstore.SPECS).
PASSWORDS = {
    SST_USER: "sst_password",
    HEALTH_USER: "health_password",
    ADMIN_USER: "admin_password",
    KEYSTONE_USER: "keystone_db_password",
    VERIFY_USER: "verify_password",
}


def host_pattern(network: IPv4Network) -> str:
    """MariaDB's account host for a network: `a.b.c.d` for one address, else `a.b.c.d/netmask`."""
    if network.prefixlen == 32:
        return str(network.network_address)
    if network.prefixlen == 0:
        return "%"
    return f"{network.network_address}/{network.netmask}"


def _patterns(networks: Iterable[IPv4Network]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(host_pattern(n) for n in sorted(set(networks))))


@dataclass(frozen=True)
class Account:
    """One user, the hosts it may connect from, and what it is granted (the password is a secret's name)."""

    user: str
    sources: tuple[str, ...]  # MariaDB account hosts: localhost, addresses, address/netmask
    secret: str  # the secret holding its password
    grant: str  # e.g. "USAGE ON *.*"
    tls: bool  # REQUIRE SSL on every source but localhost
    grant_option: bool = False

    def statements(self, password: str) -> list[str]:
        """CREATE USER (with the password, so never logged), REQUIRE SSL and GRANT, per source."""
        out = []
        for source in self.sources:
            who = f"'{self.user}'@'{source}'"
            require = " REQUIRE SSL" if self.tls and source != LOCALHOST else ""
            out.append(f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY '{password}'{require};")
            option = " WITH GRANT OPTION" if self.grant_option else ""
            out.append(f"GRANT {self.grant} TO {who}{option};")
        return out


def _net(address: IPv4Address) -> IPv4Network:
    return IPv4Network(address)


def proxy_sources(topology: Topology) -> tuple[str, ...]:
    """Every proxy's address (whatever region's proxies a node may serve as writer, backup or reader)."""
    return _patterns(_net(h.address) for h in topology.with_role("haproxy"))


def monitoring_sources(topology: Topology) -> tuple[str, ...]:
    """Where kgt check, probe and drill run (`firewall.monitoring`)."""
    return _patterns(topology.firewall.monitoring)


def admin_sources(topology: Topology) -> tuple[str, ...]:
    """localhost and the admin networks (none written: localhost only)."""
    return (LOCALHOST, *_patterns(topology.firewall.admin_networks or ()))


def accounts(topology: Topology) -> list[Account]:
    """The accounts `sql/bootstrap.sql` creates, in its order (keystone only where a host has the role)."""
    tls = topology.tls_on
    out = [
        Account(
            SST_USER,
            (LOCALHOST,),
            PASSWORDS[SST_USER],
            "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICATION CLIENT ON *.*",
            tls,
        ),
        Account(HEALTH_USER, (LOCALHOST, *monitoring_sources(topology)), PASSWORDS[HEALTH_USER], "USAGE ON *.*", tls),
        Account(ADMIN_USER, admin_sources(topology), PASSWORDS[ADMIN_USER], "ALL PRIVILEGES ON *.*", tls, True),
    ]
    keystones = topology.with_role("keystone")
    if keystones:
        sources = (*proxy_sources(topology), *_patterns(_net(h.address) for h in keystones))
        out.append(
            Account(
                KEYSTONE_USER,
                tuple(dict.fromkeys(sources)),
                PASSWORDS[KEYSTONE_USER],
                "ALL PRIVILEGES ON keystone.*",
                tls,
            )
        )
    return out


def verify_account(topology: Topology, schema: str) -> Account:
    """kgt_verify on `schema`: from the proxies (through the VIPs) and the monitoring networks."""
    sources = tuple(dict.fromkeys((*proxy_sources(topology), *monitoring_sources(topology))))
    return Account(
        VERIFY_USER, sources, PASSWORDS[VERIFY_USER], f"SELECT, INSERT, UPDATE ON {schema}.*", topology.tls_on
    )
