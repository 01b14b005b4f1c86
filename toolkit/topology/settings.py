"""Resolved settings: the built-in defaults and the site → region → host inheritance.

A topology file may leave any setting out; what a host finally gets is the first value
found in its own keys, then its region's `settings:`, then the site's `defaults:`, then
the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from toolkit.topology.document import Settings


@dataclass(frozen=True)
class GaleraConfig:
    """Galera node settings after inheritance (EVS timeouts None = derive from the RTT)."""

    weight: int = 1
    port: int = 3306
    gcomm_port: int = 4567
    ist_port: int = 4568
    sst_port: int = 4444
    health_port: int = 9200
    gcache_size: str = "1G"
    max_connections: int = 1000
    slave_threads: int | None = None
    sst_method: str = "mariabackup"
    innodb_buffer_pool_size: str = "1G"
    keepalive_period: float | None = None
    suspect_timeout: float | None = None
    inactive_timeout: float | None = None
    install_timeout: float | None = None
    send_window: int = 512
    user_send_window: int | None = None  # None = send_window (Galera requires user ≤ send)

    @property
    def user_window(self) -> int:
        """evs.user_send_window as rendered: the setting, else send_window."""
        return self.send_window if self.user_send_window is None else self.user_send_window


@dataclass(frozen=True)
class GarbdConfig:
    """Galera arbitrator settings after inheritance."""

    weight: int = 1
    port: int = 4567


@dataclass(frozen=True)
class HaproxyConfig:
    """HAProxy settings after inheritance."""

    inter: float = 1.0  # s between health checks of a server that is up
    fastinter: float = 0.25  # s between checks while a server is changing state
    downinter: float = 1.0  # s between checks of a server that is down
    fall: int = 3  # failed checks before a server is marked down
    rise: int = 2  # good checks before it is marked up again
    write_port: int = 3306  # galera-write listener (Keystone's [database] connection)
    read_port: int = 3307  # galera-read listener (dirty reads allowed)
    keystone_port: int = 5000
    stats_port: int = 8404
    maxconn: int = 4096
    timeout_client: float = 3600.0  # s a client connection may idle (Keystone keeps pooled ones)
    timeout_server: float = 3600.0
    timeout_connect: float = 2.0

    @property
    def detection_bound(self) -> float:
        """Seconds until HAProxy marks a dead server down: inter × fall."""
        return self.inter * self.fall


# advert_int when no layer sets it: keepalived's VRRPv2 counts whole seconds; with VRRPv3 a
# backup takes over after 3 × 0.3 s + skew ≈ 1 s (the proxy-loss goal is a VIP moved in 1.5 s).
DEFAULT_ADVERT_INT = {2: 1.0, 3: 0.3}


@dataclass(frozen=True)
class KeepalivedConfig:
    """keepalived settings after inheritance."""

    interface: str = "eth0"
    # 3: sub-second adverts and no authentication (the firewall lets VRRP in from the region's
    # proxies only); 2: whole-second adverts with PASS authentication, for who asks for it.
    vrrp_version: int = 3
    advert_int: float = DEFAULT_ADVERT_INT[3]  # s between VRRP adverts; a backup takes over after ~3 missed
    router_id_base: int = 51  # virtual_router_id of the site's first VIP; each next VIP counts up
    master_priority: int = 150  # the VIP's MASTER; each next proxy in the rotation 10 less


@dataclass(frozen=True)
class KeystoneConfig:
    """Keystone API settings after inheritance."""

    port: int = 5000
    workers: int = 2  # API worker processes per host
    cache_expiration: int = 3600  # s Keystone keeps cached lookups in memcached
    token_expiration: int = 3600  # s a Fernet token stays valid
    password_hash_rounds: int = 12  # bcrypt cost of stored passwords


@dataclass(frozen=True)
class MemcachedConfig:
    """memcached settings after inheritance (threads None = one per core)."""

    port: int = 11211
    memory_mb: int = 512  # -m: cache size
    threads: int | None = None  # -t: None = one per core
    max_connections: int = 4096  # -c


@dataclass(frozen=True)
class DnsConfig:
    """Zone and DNS server settings after inheritance."""

    ttl: int = 60
    port: int = 53


@dataclass(frozen=True)
class EtcdConfig:
    """etcd member settings after inheritance (timings None = derive from the RTT: `toolkit.topology.etcd`)."""

    client_port: int = 2379
    peer_port: int = 2380
    heartbeat: float | None = None  # s; heartbeat-interval
    election_timeout: float | None = None  # s; election-timeout


@dataclass(frozen=True, kw_only=True)
class HostSettings:
    """Everything a host's configs are rendered from, fully resolved."""

    cores: int
    galera: GaleraConfig
    garbd: GarbdConfig
    haproxy: HaproxyConfig
    keepalived: KeepalivedConfig
    keystone: KeystoneConfig
    memcached: MemcachedConfig
    dns: DnsConfig
    etcd: EtcdConfig


_SECTIONS: dict[str, type[Any]] = {
    "galera": GaleraConfig,
    "garbd": GarbdConfig,
    "haproxy": HaproxyConfig,
    "keepalived": KeepalivedConfig,
    "keystone": KeystoneConfig,
    "memcached": MemcachedConfig,
    "dns": DnsConfig,
    "etcd": EtcdConfig,
}
DEFAULT_CORES = 2

T = TypeVar("T")


def _merge(cls: type[T], layers: list[dict[str, Any]]) -> T:
    values: dict[str, Any] = {}
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for layer in layers:
        values.update({k: v for k, v in layer.items() if k in known and v is not None})
    return cls(**values)


def resolve(*layers: Settings | None) -> HostSettings:
    """Resolve settings layers, most general first (site, region, host)."""
    dumps = [layer.model_dump(exclude_none=True) for layer in layers if layer is not None]
    cores = DEFAULT_CORES
    for dump in dumps:
        cores = dump.get("cores", cores)
    sections = {name: _merge(cls, [d.get(name, {}) for d in dumps]) for name, cls in _SECTIONS.items()}
    vrrp = sections["keepalived"]
    if not any("advert_int" in d.get("keepalived", {}) for d in dumps):
        sections["keepalived"] = replace(vrrp, advert_int=DEFAULT_ADVERT_INT[vrrp.vrrp_version])
    return HostSettings(cores=cores, **sections)
