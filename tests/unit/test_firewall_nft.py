"""Every rendered kgt.nft and nftables.conf passes the real `nft -c -f` (Debian nftables; CI installs it).

Every topology in topology/ as shipped, then each with the firewall forced on in both modes,
and the edge shapes (a lone proxy, a proxy without VIPs, a garbd). `nft -c` asks the kernel to
check the ruleset without applying it, which needs CAP_NET_ADMIN: as root it runs as is, as
another user inside a user and network namespace of its own (`unshare -Urn`). Skipped, saying
why, only when the binary is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import ROOT, fake_secrets, topology_data, write_topology

from toolkit.render import engine
from toolkit.topology import load

NFT = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if Path(p).exists()), None)
SHIPPED = sorted(p for p in (ROOT / "topology").glob("*.yaml") if not p.name.endswith(".secrets.yaml"))
FORCED = {
    "include": {"enabled": True},
    "complete": {
        "enabled": True,
        "mode": "complete",
        "admin_networks": ["192.0.2.0/24"],
        "monitoring": ["192.0.2.10", "198.51.100.0/24"],
        "ssh_port": 2222,
    },
}
pytestmark = pytest.mark.skipif(NFT is None, reason="nft is not installed (apt-get install nftables)")


def edge_data() -> dict[str, Any]:
    return topology_data(
        per_region=[
            ["galera+keystone+memcached", "haproxy+keepalived+dns"],
            ["galera", "galera", "haproxy", "keystone+memcached"],
            ["garbd"],
        ]
    )


def variants(root: Path) -> dict[str, Path]:
    """Label → topology file: the shipped ones as they are, each forced on in both modes, the edge shapes."""
    out = {f"{p.stem}": p for p in SHIPPED}
    for p in SHIPPED:
        for mode, firewall in FORCED.items():
            data = {k: v for k, v in yaml.safe_load(p.read_text()).items() if k != "tls"}  # the firewall alone
            out[f"{p.stem}-{mode}"] = write_topology(root / f"{p.stem}-{mode}", {**data, "firewall": firewall})
    for mode, firewall in FORCED.items():
        out[f"edge-{mode}"] = write_topology(root / f"edge-{mode}", {**edge_data(), "firewall": firewall})
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every rendered nftables file, written under its host's tree (`label/host/etc/...`)."""
    root = tmp_path_factory.mktemp("nft")
    out: dict[str, Path] = {}
    for label, source in variants(root / "src").items():
        for f in engine.render(load(source), fake_secrets()):
            if "nftables" in f.path:
                target = root / "out" / label / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f.content)
                out[f"{label}/{f.path}"] = target
    return out


def nft_check(path: Path, include: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(NFT), "-c", *(["-I", str(include)] if include else []), "-f", str(path)]
    if os.geteuid() != 0:
        argv = ["unshare", "--user", "--map-root-user", "--net", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_every_topology_and_mode_renders_firewalls(rendered: dict[str, Path]) -> None:
    example = load(ROOT / "topology" / "example.yaml")
    assert example.firewall.enabled, "the example ships with the firewall on"
    assert [p for p in rendered if p.startswith("example/")] == [
        f"example/{h}/etc/nftables.d/kgt.nft" for h in sorted(h.name for h in example.hosts)
    ]
    for p in SHIPPED:
        hosts = len(load(p).hosts)
        assert len([k for k in rendered if k.startswith(f"{p.stem}-include/")]) == hosts
        assert len([k for k in rendered if k.startswith(f"{p.stem}-complete/")]) == 2 * hosts
    assert not [k for k in rendered if k.startswith("catalyst-lab/")], "catalyst-lab keeps the firewall off"


def test_every_kgt_nft_passes_nft_check(rendered: dict[str, Path]) -> None:
    files = [path for label, path in rendered.items() if label.endswith("kgt.nft")]
    assert len(files) > 100
    failed = {}
    for path in files:
        proc = nft_check(path)
        if proc.returncode != 0:
            failed[str(path)] = proc.stderr.strip()
    assert not failed, failed


def test_every_complete_nftables_conf_passes_nft_check_with_its_include(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    confs = [path for label, path in rendered.items() if label.endswith("etc/nftables.conf")]
    assert confs
    for path in confs:
        proc = nft_check(path, include=path.parent)  # the include is relative to nft's include path (/etc)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"
    etc = shutil.copytree(confs[0].parent, tmp_path / "etc")  # a copy: the rendered files stay intact
    broken = etc / "nftables.d" / "kgt.nft"
    broken.write_text(broken.read_text().replace("policy drop;", "policy dropp;"))
    assert nft_check(etc / "nftables.conf", include=etc).returncode != 0, "nft -c does not check the include"
