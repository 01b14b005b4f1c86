"""The resolved topology: frozen objects with the computed facts every other part uses.

Built once from a validated `TopologyDoc` by `Topology.from_document`; nothing
downstream reads the YAML or raw dicts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.topology.document import FirewallDoc, TlsDoc, TopologyDoc
from toolkit.topology.settings import HostSettings, resolve


@dataclass(frozen=True)
class Vip:
    """A virtual IP of a region and the proxy that should be its VRRP MASTER."""

    name: str
    address: IPv4Address
    region: str
    index: int  # position within the region, 0-based
    router_id: int  # VRRP virtual_router_id, unique in the whole site
    master: str | None  # host name of the intended MASTER (None when the region has no keepalived)


@dataclass(frozen=True)
class Host:
    """One machine and the roles it holds."""

    name: str
    address: IPv4Address
    region: str
    roles: frozenset[str]
    settings: HostSettings

    def has(self, role: str) -> bool:
        """Whether the host holds `role`."""
        return role in self.roles

    @property
    def is_voter(self) -> bool:
        """Whether the host votes in Galera's quorum (a Galera node or a garbd)."""
        return self.has("galera") or self.has("garbd")

    @property
    def weight(self) -> int:
        """Its pc.weight in the quorum (0 for a host that does not vote)."""
        if self.has("galera"):
            return self.settings.galera.weight
        if self.has("garbd"):
            return self.settings.garbd.weight
        return 0

    @property
    def gcomm_address(self) -> str:
        """`address:port` of its group communication listener."""
        port = self.settings.galera.gcomm_port if self.has("galera") else self.settings.garbd.port
        return f"{self.address}:{port}"


class HostGroup:
    """What a group of hosts (a region, the whole site) says about them, in file order."""

    if TYPE_CHECKING:

        @property
        def hosts(self) -> tuple[Host, ...]:
            """The group's hosts, in file order (a field of a region, computed for the site)."""

    def with_role(self, role: str) -> tuple[Host, ...]:
        """The hosts holding `role`, in file order."""
        return tuple(h for h in self.hosts if h.has(role))

    @property
    def galera_nodes(self) -> tuple[Host, ...]:
        """The Galera nodes."""
        return self.with_role("galera")

    @property
    def voters(self) -> tuple[Host, ...]:
        """The hosts that vote in the quorum: Galera nodes and garbd."""
        return tuple(h for h in self.hosts if h.is_voter)


@dataclass(frozen=True)
class Tls:
    """Where the site's certificates live (`tls:`); `dir` is set when kgt runs the CA itself.

    `ca_file` is what clients trust (kgt's: the bundle of the current and previous CAs),
    `certs_dir` holds `HOST.crt` and `HOST.key` for every host.
    """

    enabled: bool
    dir: Path | None  # kgt's own CA; None: the operator's files
    ca_file: Path
    certs_dir: Path
    days: int
    create: bool = False  # render and lab up run `kgt pki init` first

    @property
    def managed(self) -> bool:
        """Whether kgt issues the certificates (`kgt pki init`/`rotate`)."""
        return self.dir is not None

    @classmethod
    def from_document(cls, doc: TlsDoc, source: Path) -> Tls:
        """Paths resolved against the topology file's folder; default dir `<stem>.pki` beside it."""
        base = source.parent
        if doc.ca is not None or doc.certs is not None:
            return cls(doc.enabled, None, base / (doc.ca or ""), base / (doc.certs or ""), doc.days)
        directory = base / (doc.dir or f"{source.stem}.pki")
        return cls(doc.enabled, directory, directory / "ca-bundle.crt", directory / "certs", doc.days, doc.create)


@dataclass(frozen=True)
class Region(HostGroup):
    """A region: one gmcast.segment with its hosts and VIPs."""

    name: str
    index: int  # 1-based position in the file; also the Galera segment
    subnet: IPv4Network
    hosts: tuple[Host, ...]
    vips: tuple[Vip, ...]

    @property
    def segment(self) -> int:
        """gmcast.segment of the region's Galera nodes."""
        return self.index

    @property
    def weight(self) -> int:
        """Total quorum weight of the region."""
        return sum(h.weight for h in self.voters)


@dataclass(frozen=True)
class Firewall:
    """The site's `firewall:` with its defaults resolved (what `toolkit.render.firewall` reads)."""

    enabled: bool = False
    mode: str = "include"  # include | complete (also renders etc/nftables.conf)
    client_networks: tuple[IPv4Network, ...] = ()  # resolved: every region subnet when the file gives none
    admin_networks: tuple[IPv4Network, ...] | None = None  # None: anywhere
    monitoring: tuple[IPv4Network, ...] = ()
    ssh: bool = True
    ssh_port: int = 22

    @classmethod
    def from_document(cls, doc: FirewallDoc, subnets: tuple[IPv4Network, ...]) -> Firewall:
        """Resolve the defaults: client networks default to `subnets` (every region's)."""
        clients = subnets if doc.client_networks is None else tuple(doc.client_networks)
        admins = None if doc.admin_networks is None else tuple(doc.admin_networks)
        return cls(doc.enabled, doc.mode, clients, admins, tuple(doc.monitoring), doc.ssh, doc.ssh_port)


@dataclass(frozen=True)
class Topology(HostGroup):
    """The whole site: regions, hosts, VIPs, WAN hints and where its secrets live."""

    name: str
    domain: str
    regions: tuple[Region, ...]
    default_rtt: float
    rtt_pairs: dict[frozenset[str], float] = field(hash=False)
    secrets_file: Path
    secrets_create: bool
    source: Path
    survive: tuple[str, ...] = ()  # survivability promises (`toolkit.analysis.promises`)
    tls: Tls | None = None  # the site PKI; None: no `tls:` section, no TLS
    firewall: Firewall = Firewall()

    @classmethod
    def from_document(cls, doc: TopologyDoc, source: Path) -> Topology:
        """Resolve inheritance and compute VIP ownership; `doc` must be valid already."""
        regions = []
        router_id = None
        for r_index, rdoc in enumerate(doc.regions, start=1):
            hosts = tuple(
                Host(
                    name=h.name,
                    address=h.address,
                    region=rdoc.name,
                    roles=frozenset(h.roles),
                    settings=resolve(doc.defaults, rdoc.settings, h),
                )
                for h in rdoc.hosts
            )
            proxies = [h for h in hosts if h.has("keepalived")]
            if router_id is None:
                base = hosts[0].settings.keepalived.router_id_base
                router_id = itertools.count(base)
            vips = tuple(
                Vip(
                    name=v.name,
                    address=v.address,
                    region=rdoc.name,
                    index=i,
                    router_id=next(router_id),
                    master=proxies[i % len(proxies)].name if proxies else None,
                )
                for i, v in enumerate(rdoc.vips)
            )
            regions.append(Region(rdoc.name, r_index, rdoc.subnet, hosts, vips))
        pairs = {frozenset(p.between): p.rtt for p in doc.wan.pairs}
        return cls(
            name=doc.name,
            domain=doc.domain,
            regions=tuple(regions),
            default_rtt=doc.wan.rtt,
            rtt_pairs=pairs,
            secrets_file=(source.parent / doc.secrets.file),
            secrets_create=doc.secrets.create,
            source=source,
            survive=tuple(doc.survive),
            tls=Tls.from_document(doc.tls, source) if doc.tls is not None else None,
            firewall=Firewall.from_document(doc.firewall, tuple(r.subnet for r in regions)),
        )

    @property
    def tls_on(self) -> bool:
        """Whether the site runs TLS: a `tls:` section that is not `enabled: false`."""
        return self.tls is not None and self.tls.enabled

    @property
    def client_ca(self) -> Path | None:
        """The CA bundle kgt's own clients (check, probe, drill, lab) verify servers with; None without TLS."""
        return self.tls.ca_file if self.tls is not None and self.tls.enabled else None

    @cached_property
    def hosts(self) -> tuple[Host, ...]:
        """Every host, region by region in file order."""
        return tuple(h for r in self.regions for h in r.hosts)

    def host(self, name: str) -> Host:
        """The host called `name` (KeyError if none)."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def region(self, name: str) -> Region:
        """The region called `name` (KeyError if none)."""
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    def region_of(self, host: Host) -> Region:
        """The region `host` belongs to."""
        return self.region(host.region)

    @property
    def vips(self) -> tuple[Vip, ...]:
        """Every VIP of every region."""
        return tuple(v for r in self.regions for v in r.vips)

    @property
    def total_weight(self) -> int:
        """Sum of every voter's weight."""
        return sum(h.weight for h in self.voters)

    def rtt(self, a: str, b: str) -> float:
        """Expected RTT between regions `a` and `b` in seconds (0 within a region)."""
        if a == b:
            return 0.0
        return self.rtt_pairs.get(frozenset((a, b)), self.default_rtt)

    @property
    def worst_rtt(self) -> float:
        """The largest expected RTT between any two regions."""
        names = [r.name for r in self.regions]
        return max((self.rtt(a, b) for a, b in itertools.combinations(names, 2)), default=0.0)
