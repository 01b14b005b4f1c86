"""The topology file as written: pydantic models that type-check it and publish its JSON Schema.

These models describe the YAML document only; `toolkit.topology.model` turns a valid
document into the resolved, immutable domain model that everything else uses.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

ROLES = ("galera", "garbd", "haproxy", "keepalived", "keystone", "memcached", "dns", "etcd")
Role = Literal["galera", "garbd", "haproxy", "keepalived", "keystone", "memcached", "dns", "etcd"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(value: object) -> object:
    """Accept `1.5`, `"1500ms"`, `"1.5s"` or `"2m"`; return seconds as a float."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '500ms', '2s', '1m'")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            number, unit = float(match.group(1)), match.group(2) or "s"
            return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]
    raise ValueError(f"{value!r} is not a duration (use a number of seconds or '500ms', '2s', '1m')")


# The JSON Schema must accept what the validator accepts ("50ms" as well as 0.05), or
# editors would flag every topology that writes durations with a unit.
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": _DURATION.pattern},
    ],
    "description": "seconds, or a string like '500ms', '2s', '1m'",
}
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0), WithJsonSchema(_DURATION_SCHEMA)]


def _centiseconds(value: float) -> float:
    # keepalived counts VRRPv3 adverts in centiseconds (0.01-40.95 s) and VRRPv2 ones in whole
    # seconds (1-255); which applies depends on vrrp_version, checked with the host's settings.
    if round(value * 100) != round(value * 100, 6) or not 0.01 <= value <= 255:
        raise ValueError("a VRRP advert interval is 0.01 s to 255 s, in steps of 10 ms")
    return value


AdvertInterval = Annotated[Duration, AfterValidator(_centiseconds)]
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
# A survivability promise: the grammar is checked by `validate` (toolkit.analysis.promises.parse).
Promise = Annotated[str, Field(min_length=1, max_length=200)]
Size = Annotated[str, Field(pattern=r"^\d+[KMGT]?$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GaleraSettings(_Strict):
    """Galera node settings (`galera:`); every field inherits site → region → host."""

    weight: Annotated[int, Field(ge=0, le=255)] | None = Field(None, description="pc.weight of the node")
    port: Port | None = None
    gcomm_port: Port | None = None
    ist_port: Port | None = None
    sst_port: Port | None = None
    health_port: Port | None = Field(None, description="port of `kgt health serve` (HAProxy checks it)")
    gcache_size: Size | None = None
    max_connections: Annotated[int, Field(ge=10)] | None = None
    slave_threads: Annotated[int, Field(ge=1)] | None = Field(None, description="default: the host's cores")
    sst_method: Literal["mariabackup", "rsync"] | None = None
    innodb_buffer_pool_size: Size | None = None
    keepalive_period: Duration | None = Field(None, description="evs.keepalive_period; default derived from RTT")
    suspect_timeout: Duration | None = None
    inactive_timeout: Duration | None = None
    install_timeout: Duration | None = None
    send_window: Annotated[int, Field(ge=1)] | None = None
    user_send_window: Annotated[int, Field(ge=1)] | None = Field(
        None, description="at most send_window; unset means equal to send_window"
    )


class GarbdSettings(_Strict):
    """Galera arbitrator settings (`garbd:`)."""

    weight: Annotated[int, Field(ge=0, le=255)] | None = None
    port: Port | None = None


class HaproxySettings(_Strict):
    """HAProxy settings (`haproxy:`); detection time is inter × fall."""

    inter: Duration | None = Field(None, description="health check interval")
    fastinter: Duration | None = Field(None, description="check interval once a server starts failing")
    downinter: Duration | None = Field(None, description="check interval of a server that is down")
    fall: Annotated[int, Field(ge=1)] | None = None
    rise: Annotated[int, Field(ge=1)] | None = None
    write_port: Port | None = None
    read_port: Port | None = None
    keystone_port: Port | None = None
    stats_port: Port | None = None
    maxconn: Annotated[int, Field(ge=1)] | None = None
    timeout_client: Duration | None = None
    timeout_server: Duration | None = None
    timeout_connect: Duration | None = None


class KeepalivedSettings(_Strict):
    """keepalived settings (`keepalived:`)."""

    interface: str | None = None
    vrrp_version: Literal[2, 3] | None = None
    advert_int: AdvertInterval | None = None
    router_id_base: Annotated[int, Field(ge=1, le=255)] | None = None
    master_priority: Annotated[int, Field(ge=2, le=254)] | None = None


class KeystoneSettings(_Strict):
    """Keystone API settings (`keystone:`)."""

    port: Port | None = None
    workers: Annotated[int, Field(ge=1)] | None = None
    cache_expiration: Annotated[int, Field(ge=1)] | None = None
    token_expiration: Annotated[int, Field(ge=60)] | None = None
    password_hash_rounds: Annotated[int, Field(ge=4, le=31)] | None = None


class MemcachedSettings(_Strict):
    """memcached settings (`memcached:`)."""

    port: Port | None = None
    memory_mb: Annotated[int, Field(ge=16)] | None = None
    threads: Annotated[int, Field(ge=1)] | None = Field(None, description="default: the host's cores")
    max_connections: Annotated[int, Field(ge=16)] | None = None


class DnsSettings(_Strict):
    """Settings of the zone and its servers (`dns:`)."""

    ttl: Annotated[int, Field(ge=1)] | None = None
    port: Port | None = None


class EtcdSettings(_Strict):
    """Settings of the site's etcd members (`etcd:`), the store `kgt publish` writes and the agents watch.

    heartbeat and election_timeout are site-wide (every member must use the same ones): set them
    under `defaults`. Left out, they are derived from the WAN hints as etcd's tuning guide says.
    """

    client_port: Port | None = None
    peer_port: Port | None = None
    heartbeat: Duration | None = Field(
        None, description="heartbeat-interval; default: the worst RTT between members, at least 100 ms"
    )
    election_timeout: Duration | None = Field(
        None, description="election-timeout; default: 10 × the heartbeat, at least 1 s"
    )


class Settings(_Strict):
    """One layer of settings: `defaults:` (site), a region's `settings:`, or a host's own keys."""

    cores: Annotated[int, Field(ge=1)] | None = Field(None, description="CPU cores of the host")
    galera: GaleraSettings | None = None
    garbd: GarbdSettings | None = None
    haproxy: HaproxySettings | None = None
    keepalived: KeepalivedSettings | None = None
    keystone: KeystoneSettings | None = None
    memcached: MemcachedSettings | None = None
    dns: DnsSettings | None = None
    etcd: EtcdSettings | None = None


class HostDoc(Settings):
    """A host: its name, address and composable roles; role-named keys are its own settings."""

    name: Name
    address: IPv4Address
    roles: list[Role] = Field(min_length=1)


class VipDoc(_Strict):
    """A virtual IP held by the region's keepalived proxies."""

    name: Name
    address: IPv4Address


class RegionDoc(_Strict):
    """A region: one Galera segment, its VIPs and hosts."""

    name: Name
    subnet: IPv4Network
    settings: Settings | None = None
    vips: list[VipDoc] = Field(default_factory=list)
    hosts: list[HostDoc] = Field(min_length=1)


class RttPair(_Strict):
    """Expected round-trip time between two named regions."""

    between: Annotated[list[Name], Field(min_length=2, max_length=2)]
    rtt: Duration


class WanDoc(_Strict):
    """WAN hints: expected round-trip times, used to derive Galera's EVS timeouts."""

    rtt: Duration = Field(default=0.05, description="default RTT between any two regions")
    pairs: list[RttPair] = Field(default_factory=list)


class SecretsDoc(_Strict):
    """Where secrets live; values are never written in the topology itself."""

    file: str = Field(default="secrets.yaml", description="path relative to the topology file")
    create: bool = Field(
        default=False,
        description="render creates the file with random values when absent (labs)",
    )


class TlsDoc(_Strict):
    """The site PKI (`tls:`): kgt's own CA in `dir`, or the operator's `ca` and `certs`."""

    enabled: bool = Field(
        default=True,
        description="check every host's certificate before rendering (a written `tls:` section asks for TLS)",
    )
    dir: str | None = Field(
        None,
        description="where kgt keeps its CA and host certificates, relative to the topology file "
        "(default: <topology name>.pki beside it); not with ca/certs",
    )
    ca: str | None = Field(None, description="your own CA certificate (or bundle) file; kgt issues nothing")
    certs: str | None = Field(None, description="with ca: the directory holding HOST.crt and HOST.key per host")
    days: Annotated[int, Field(ge=1, le=825)] = Field(
        default=365, description="validity of the host certificates kgt issues, in days"
    )
    create: bool = Field(
        default=False,
        description="render and `kgt lab up` make the CA and any missing host certificate first, as "
        "`kgt pki init` does (labs; like secrets.create); not with ca/certs",
    )


class FirewallDoc(_Strict):
    """The per-host nftables ruleset (`firewall:`): what each host accepts beyond its peers' flows."""

    enabled: bool = Field(default=False, description="render etc/nftables.d/kgt.nft on every host")
    mode: Literal["include", "complete"] = Field(
        default="include",
        description="include: only the kgt table, to load beside an existing ruleset; complete: also an "
        "etc/nftables.conf that flushes the whole ruleset and includes it",
    )
    client_networks: list[IPv4Network] | None = Field(
        default=None,
        description="who may reach the VIPs (Keystone, Galera listeners) and DNS; default: every region subnet",
    )
    admin_networks: list[IPv4Network] | None = Field(
        default=None,
        description="who may reach SSH and HAProxy stats (default: anywhere), and where kgt_admin may log in "
        "from (default: localhost only); read even with the firewall off",
    )
    monitoring: list[IPv4Network] = Field(
        default_factory=list,
        description="addresses or networks where kgt check, probe and drill run (health endpoints, MariaDB, "
        "HAProxy stats, the VIPs, DNS; the kgt_health and kgt_verify accounts' sources, even with the firewall "
        "off); default: none",
    )
    ssh: bool = Field(default=True, description="accept SSH; false closes it (only when written explicitly)")
    ssh_port: Port = 22


class TopologyDoc(_Strict):
    """The whole topology file."""

    name: Name = Field(description="becomes wsrep_cluster_name")
    domain: Annotated[str, Field(pattern=r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")]
    defaults: Settings | None = None
    wan: WanDoc = Field(default_factory=lambda: WanDoc())
    secrets: SecretsDoc = Field(default_factory=lambda: SecretsDoc())
    tls: TlsDoc | None = Field(None, description="the site PKI; absent: no TLS (today's configs)")
    regions: list[RegionDoc] = Field(min_length=1)
    survive: list[Promise] = Field(
        default_factory=list,
        description="failures the site must survive, checked by `kgt validate`: failure kinds (node-loss, "
        "region-loss, region-isolated, split, maintenance) joined by '+' (at the same time) and '>' (one after "
        "the other, each after the cluster re-formed), e.g. region-loss, region-loss+node-loss, "
        "region-loss>node-loss>node-loss, maintenance+region-loss",
    )
    firewall: FirewallDoc = Field(default_factory=lambda: FirewallDoc())
