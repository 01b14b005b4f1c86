"""Every rendered haproxy.cfg passes `haproxy -c`, every keepalived.conf `keepalived -t`.

The real programs, never mocked (the Debian packages haproxy and keepalived; CI installs
them). A test is skipped, saying why, only when the binary is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from builders import CATALYST, EXAMPLE, fake_secrets, topology_data, write_topology

from toolkit import tlsfiles
from toolkit.render import engine
from toolkit.topology import load

HAPROXY = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/sbin/haproxy") if Path(p).exists()), None)
KEEPALIVED = shutil.which("keepalived") or next(
    (p for p in ("/usr/sbin/keepalived", "/sbin/keepalived") if Path(p).exists()), None
)


def edge_topology(directory: Path) -> Path:
    """Shapes the shipped topologies lack: a lone proxy, a region without VIPs, a garbd, VRRPv2."""
    data = topology_data(
        per_region=[
            ["galera+keystone+memcached", "haproxy+keepalived+dns"],  # one proxy, no unicast peers
            ["galera", "galera", "haproxy", "keystone+memcached"],  # proxy on its own address
            ["garbd"],
        ],
        vips=3,
        # VRRPv2 (PASS authentication, whole seconds) here; the example and Catalyst use VRRPv3.
        defaults={
            "haproxy": {"inter": "500ms", "timeout_connect": 1.5},
            "keepalived": {"vrrp_version": 2, "advert_int": "2s"},
        },
    )
    return write_topology(directory, data)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every haproxy.cfg and keepalived.conf of the example, catalyst and edge topologies."""
    root = tmp_path_factory.mktemp("binaries")
    sources = {"example": EXAMPLE, "catalyst": CATALYST, "edge": edge_topology(root / "edge-src")}
    out: dict[str, Path] = {}
    tls = tlsfiles.BY_ROLE["haproxy"].path
    for label, source in sources.items():
        for f in engine.render(load(source), fake_secrets()):
            target = root / label / f.path
            content = f.content
            if f.path.endswith("haproxy.cfg"):  # the real certificate files, where this test wrote them
                content = content.replace(f" {tls}/", f" {root / label / str(f.host)}{tls}/")
            if f.path.endswith(("haproxy.cfg", "keepalived.conf")) or f"{tls}/" in f.path:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
            if f.path.endswith(("haproxy.cfg", "keepalived.conf")):
                out[f"{label}/{f.path}"] = target
    return out


def configs(suffix: str) -> list[str]:
    """Ids of the files the module renders, known without rendering (for parametrize)."""
    ids = []
    for label, source in (("example", EXAMPLE), ("catalyst", CATALYST)):
        t = load(source)
        role = "haproxy" if suffix == "haproxy.cfg" else "keepalived"
        sub = "haproxy/haproxy.cfg" if role == "haproxy" else "keepalived/keepalived.conf"
        ids += [f"{label}/{h.name}/etc/{sub}" for h in t.with_role(role)]
    if suffix == "haproxy.cfg":
        ids += ["edge/r1-proxy1/etc/haproxy/haproxy.cfg", "edge/r2-proxy1/etc/haproxy/haproxy.cfg"]
    else:
        ids += ["edge/r1-proxy1/etc/keepalived/keepalived.conf"]
    return ids


def test_every_proxy_config_is_covered(rendered: dict[str, Path]) -> None:
    assert sorted(rendered) == sorted(configs("haproxy.cfg") + configs("keepalived.conf"))
    assert len(configs("haproxy.cfg")) == 6 + 6 + 2


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy)")
@pytest.mark.parametrize("name", configs("haproxy.cfg"))
def test_haproxy_accepts(name: str, rendered: dict[str, Path]) -> None:
    path = rendered[name]
    assert path.is_file()
    proc = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)  # type: ignore[list-item]
    assert proc.returncode == 0, f"haproxy -c rejected {name}:\n{proc.stdout}{proc.stderr}"
    assert "Configuration file is valid" in proc.stdout + proc.stderr


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed (apt-get install keepalived)")
@pytest.mark.parametrize("name", configs("keepalived.conf"))
def test_keepalived_accepts(name: str, rendered: dict[str, Path]) -> None:
    path = rendered[name]
    # keepalived -t exits 0 for a file that does not exist: check it is there first.
    assert path.is_file()
    proc = subprocess.run([KEEPALIVED, "-t", "-f", str(path)], capture_output=True, text=True, timeout=30)  # type: ignore[list-item]
    assert proc.returncode == 0, f"keepalived -t rejected {name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed (apt-get install keepalived)")
def test_keepalived_check_catches_a_broken_config(tmp_path: Path, rendered: dict[str, Path]) -> None:
    """The check above is worth something: keepalived -t does fail on a bad priority."""
    text = rendered["example/r1-proxy1/etc/keepalived/keepalived.conf"].read_text()
    broken = tmp_path / "keepalived.conf"
    broken.write_text(text.replace("priority 150", "priority 0", 1))
    proc = subprocess.run([KEEPALIVED, "-t", "-f", str(broken)], capture_output=True, text=True, timeout=30)  # type: ignore[list-item]
    assert proc.returncode != 0


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy)")
def test_haproxy_check_catches_a_broken_config(tmp_path: Path, rendered: dict[str, Path]) -> None:
    text = rendered["example/r1-proxy1/etc/haproxy/haproxy.cfg"].read_text()
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(text.replace("balance leastconn", "balance nonsense", 1))
    proc = subprocess.run([HAPROXY, "-c", "-f", str(broken)], capture_output=True, text=True, timeout=30)  # type: ignore[list-item]
    assert proc.returncode != 0
