"""The lab's compose file: one container per host on one internal network, 10.213.0.0/16.

Regions are /24s inside that one network (containers on separate internal networks
cannot reach each other); cross-region delay and cuts are applied inside the containers
and by the WAN router container, never on the host.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from toolkit.errors import LabError
from toolkit.lab.docker import IMAGE
from toolkit.topology.model import Topology

LAB_NETWORK = IPv4Network("10.213.0.0/16")
GATEWAY = IPv4Address("10.213.0.1")
ROUTER = IPv4Address("10.213.0.254")
ROUTER_NAME = "kgt-wan"
NETWORK_NAME = "lab"


def project_name(topology: Topology) -> str:
    """The compose project of a topology's lab."""
    return f"kgt-{topology.name}"


def check_addresses(topology: Topology) -> None:
    """Refuse a topology whose addresses leave the lab range (network safety)."""
    reserved = {GATEWAY, ROUTER}
    for region in topology.regions:
        if not region.subnet.subnet_of(LAB_NETWORK):
            raise LabError(f"region {region.name}: subnet {region.subnet} is outside the lab range {LAB_NETWORK}")
        if region.subnet.overlaps(IPv4Network("10.213.0.0/24")):
            raise LabError(f"region {region.name}: 10.213.0.0/24 is kept for the lab's gateway and WAN router")
    for host in topology.hosts:
        if host.address in reserved:
            raise LabError(f"host {host.name}: {host.address} is reserved in the lab")


def _mounts(rendered: Path, host: str) -> list[str]:
    root = rendered / host
    return sorted(f"{path}:/{path.relative_to(root).as_posix()}:ro" for path in root.rglob("*") if path.is_file())


def build(topology: Topology, rendered: Path, source: Path) -> dict[str, Any]:
    """The compose document for `topology`, mounting files rendered under `rendered`."""
    check_addresses(topology)
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for host in topology.hosts:
        sysctls = {"net.ipv4.conf.all.accept_redirects": "0", "net.ipv4.conf.default.accept_redirects": "0"}
        if host.has("haproxy"):
            sysctls["net.ipv4.ip_nonlocal_bind"] = "1"
        mounts = [
            *_mounts(rendered, host.name),
            f"{source / 'toolkit'}:/opt/kgt/src/toolkit:ro",
            # The topology itself comes with the rendered files (/etc/kgt/topology.yaml, for probes
            # run on the host, NRPE-style: `kgt probe vip`, and for the agent).
        ]
        if host.has("galera"):
            volumes[f"{host.name}-data"] = {}
            mounts.append(f"{host.name}-data:/var/lib/mysql")
        services[host.name] = {
            "image": IMAGE,
            "container_name": host.name,
            "hostname": host.name,
            "init": True,
            "cap_add": ["NET_ADMIN", "NET_RAW"],
            "sysctls": sysctls,
            "networks": {NETWORK_NAME: {"ipv4_address": str(host.address)}},
            "volumes": mounts,
            "labels": {"kgt.region": host.region, "kgt.roles": ",".join(sorted(host.roles))},
        }
    services[ROUTER_NAME] = {
        "image": IMAGE,
        "container_name": ROUTER_NAME,
        "hostname": ROUTER_NAME,
        "init": True,
        "cap_add": ["NET_ADMIN", "NET_RAW"],
        "devices": ["/dev/net/tun:/dev/net/tun"],
        "sysctls": {
            "net.ipv4.ip_forward": "1",
            "net.ipv4.conf.all.send_redirects": "0",
            "net.ipv4.conf.default.send_redirects": "0",
            "net.ipv4.conf.all.rp_filter": "0",
            "net.ipv4.conf.default.rp_filter": "0",
        },
        "networks": {NETWORK_NAME: {"ipv4_address": str(ROUTER)}},
        "volumes": [f"{source / 'toolkit'}:/opt/kgt/src/toolkit:ro"],
        "labels": {"kgt.role": "wan-router"},
    }
    return {
        "version": "2.4",
        "services": services,
        "volumes": volumes,
        "networks": {
            NETWORK_NAME: {
                "driver": "bridge",
                "internal": True,
                "ipam": {"config": [{"subnet": str(LAB_NETWORK), "gateway": str(GATEWAY)}]},
            }
        },
    }
