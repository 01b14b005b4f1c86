"""Rendering: golden files of the example, determinism, the atomic output directory, modes."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from builders import (
    EXAMPLE,
    EXAMPLE_SECRETS,
    ROOT,
    fake_secret_values,
    fake_secrets,
    make_topology,
    topology_data,
    write_topology,
)

from toolkit import secretstore, tlsfiles
from toolkit.errors import RenderError
from toolkit.render import engine, output
from toolkit.topology import Topology, load

GOLDEN = ROOT / "tests" / "golden" / "example"
UPDATE = os.environ.get("KGT_UPDATE_GOLDEN") == "1"


def golden_paths() -> list[str]:
    if not GOLDEN.is_dir():
        return []
    return sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file())


def is_tls_file(f: engine.RenderedFile) -> bool:
    """A copy of the site PKI (random keys, new each run): no golden file, tests/unit/test_tls_render.py."""
    if f.path == f"{f.host}{tlsfiles.AGENT_CA}":
        return True
    return any(f.path.startswith(f"{f.host}{d.path}/") for d in tlsfiles.BY_ROLE.values())


@pytest.fixture(scope="module")
def example_files() -> dict[str, engine.RenderedFile]:
    topology = load(EXAMPLE)
    files = engine.render(topology, secretstore.read(EXAMPLE_SECRETS))
    return {f.path: f for f in files if not is_tls_file(f)}


def test_golden_tree_matches(example_files: dict[str, engine.RenderedFile]) -> None:
    """The example renders exactly the golden files (regenerate: KGT_UPDATE_GOLDEN=1)."""
    if UPDATE:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for path, f in example_files.items():
            target = GOLDEN / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.content, encoding="utf-8")
        pytest.skip(f"golden files rewritten in {GOLDEN}; review them with git diff")
    assert golden_paths(), f"no golden files in {GOLDEN}: run once with KGT_UPDATE_GOLDEN=1 and review"
    assert sorted(example_files) == golden_paths()


@pytest.mark.parametrize("path", golden_paths())
def test_golden_file(path: str, example_files: dict[str, engine.RenderedFile]) -> None:
    if UPDATE:
        pytest.skip("regenerating golden files")
    assert path in example_files, f"{path} is golden but no longer rendered"
    expected = (GOLDEN / path).read_text(encoding="utf-8")
    assert example_files[path].content == expected, f"{path} differs from its golden file"


def test_example_renders_every_role_of_every_host(example_files: dict[str, engine.RenderedFile]) -> None:
    hosts = {f.host for f in example_files.values() if f.host}
    assert len(hosts) == 9
    assert "r1-db1/etc/mysql/mariadb.conf.d/60-galera.cnf" in example_files
    assert "r1-proxy1/etc/bind/kgt/kgt.example.zone" in example_files  # the dns role
    assert "r2-proxy1/etc/bind/named.conf.local" not in example_files  # no dns role
    assert {"dns/kgt.example.zone", "sql/bootstrap.sql"} <= set(example_files)
    assert list(example_files) == sorted(example_files)


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_render_twice_is_byte_identical(tmp_path: Path) -> None:
    topology = load(EXAMPLE)
    secrets = secretstore.read(EXAMPLE_SECRETS)
    output.write(topology, engine.render(topology, secrets), tmp_path / "a")
    output.write(load(EXAMPLE), engine.render(load(EXAMPLE), secrets), tmp_path / "b")
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert first == second
    assert "manifest.json" in first


def test_render_again_over_own_output_replaces_it(tmp_path: Path) -> None:
    topology = make_topology(tmp_path)
    out = tmp_path / "out"
    output.write(topology, engine.render(topology, fake_secrets()), out)
    (out / "r1-db1" / "stale.conf").write_text("left over\n")
    output.write(topology, engine.render(topology, fake_secrets()), out)
    assert not (out / "r1-db1" / "stale.conf").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers == [], "staging or retired directories were left behind"


def test_non_kgt_directory_is_refused_without_force(tmp_path: Path) -> None:
    topology = make_topology(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine\n")
    with pytest.raises(RenderError, match=r"not written by kgt.*--force"):
        output.write(topology, engine.render(topology, fake_secrets()), out)
    assert (out / "precious.txt").read_text() == "mine\n"
    output.write(topology, engine.render(topology, fake_secrets()), out, force=True)
    assert not (out / "precious.txt").exists()
    assert output.is_kgt_output(out)


def test_empty_directory_and_missing_parents_are_fine(tmp_path: Path) -> None:
    topology = make_topology(tmp_path)
    (tmp_path / "empty").mkdir()
    output.write(topology, engine.render(topology, fake_secrets()), tmp_path / "empty")
    output.write(topology, engine.render(topology, fake_secrets()), tmp_path / "a" / "b" / "out")
    assert output.is_kgt_output(tmp_path / "empty")
    assert output.is_kgt_output(tmp_path / "a" / "b" / "out")


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    topology = make_topology(tmp_path)
    (tmp_path / "out").write_text("a file\n")
    with pytest.raises(RenderError, match="not a directory"):
        output.write(topology, engine.render(topology, fake_secrets()), tmp_path / "out")


def test_failed_write_leaves_previous_output_and_no_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topology = make_topology(tmp_path)
    out = tmp_path / "out"
    files = engine.render(topology, fake_secrets())
    output.write(topology, files, out)
    before = tree(out)
    calls = {"n": 0}
    real_open = os.open

    def failing_open(path: object, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        return real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", failing_open)
    changed = [engine.RenderedFile(f.path, f.host, f.content + "# new\n", f.service, f.reload, f.mode) for f in files]
    with pytest.raises(OSError, match="No space"):
        output.write(topology, changed, out)
    monkeypatch.undo()
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "secrets.yaml") == ["out", "topology.yaml"]


def test_modes_on_disk_match_manifest_and_secret_files_are_0600(tmp_path: Path) -> None:
    topology = load(EXAMPLE)
    secrets = secretstore.read(EXAMPLE_SECRETS)
    files = engine.render(topology, secrets)
    out = tmp_path / "out"
    output.write(topology, files, out)
    manifest = json.loads((out / "manifest.json").read_text())
    values = [v for v in secrets.values.values() if v]
    with_secrets = 0
    for entry in manifest["files"]:
        path = out / entry["path"]
        mode = stat.S_IMODE(path.stat().st_mode)
        assert f"{mode:04o}" == entry["mode"], entry["path"]
        if any(v in path.read_text() for v in values):
            with_secrets += 1
            assert mode == 0o600, f"{entry['path']} holds a secret but is {mode:04o}"
    assert with_secrets >= 5  # sst, health, haproxy, keepalived, keystone, bootstrap.sql
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_manifest_lists_every_file_with_digest_and_reload(tmp_path: Path) -> None:
    topology = load(EXAMPLE)
    files = engine.render(topology, secretstore.read(EXAMPLE_SECRETS))
    out = tmp_path / "out"
    output.write(topology, files, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator"] == "kgt"
    assert manifest["topology"] == "kgt-example"
    assert [e["path"] for e in manifest["files"]] == [f.path for f in files]
    for entry in manifest["files"]:
        assert entry["sha256"] == output.sha256((out / entry["path"]).read_text())
        assert entry["reload"] and entry["service"]
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == {e["path"] for e in manifest["files"]} | {"manifest.json"}


def test_missing_secret_in_template_is_an_error(tmp_path: Path) -> None:
    topology = make_topology(tmp_path, defaults={"keepalived": {"vrrp_version": 2}})
    values = fake_secret_values()
    del values["keepalived_password"]
    from toolkit.errors import SecretsError

    with pytest.raises(SecretsError, match="missing secret 'keepalived_password'"):
        engine.render(topology, secretstore.Secrets(tmp_path / "s.yaml", values))


def test_region_with_one_proxy_has_no_unicast_block(tmp_path: Path) -> None:
    """keepalived -t rejects an empty unicast_peer block; a lone proxy uses none."""
    topology = make_topology(tmp_path, per_region=("galera+keystone+memcached", "haproxy+keepalived"))
    files = {f.path: f.content for f in engine.render(topology, fake_secrets())}
    conf = files["r1-proxy1/etc/keepalived/keepalived.conf"]
    assert "unicast_peer" not in conf and "unicast_src_ip" not in conf
    assert conf.count("state MASTER") == 2  # owns both VIPs


def test_keystone_reaches_the_database_on_the_proxy_port(tmp_path: Path) -> None:
    """The port comes from the proxy that listens, not from the Keystone host's settings."""
    data = topology_data()
    for region in data["regions"]:
        for host in region["hosts"]:
            if "haproxy" in host["roles"]:
                host["haproxy"] = {"write_port": 13306}
    topology = load(write_topology(tmp_path, data))
    files = {f.path: f.content for f in engine.render(topology, fake_secrets())}
    assert "@10.100.1.100:13306/keystone" in files["r1-db1/etc/keystone/keystone.conf"]
    assert "bind 10.100.1.100:13306" in files["r1-proxy1/etc/haproxy/haproxy.cfg"]


def test_garbd_gets_peers_without_itself_and_no_galera_files(tmp_path: Path) -> None:
    topology = make_topology(tmp_path, per_region=[2, 2, ["garbd"]])
    files = {f.path: f.content for f in engine.render(topology, fake_secrets())}
    garb = files["r3-arb1/etc/default/garb"]
    assert 'GALERA_NODES="10.100.1.11:4567 10.100.1.12:4567 10.100.2.11:4567 10.100.2.12:4567"' in garb
    assert "gmcast.segment=3" in garb and "pc.weight=1" in garb
    assert not any(p.startswith("r3-arb1/etc/mysql") for p in files)


def test_bootstrap_sql_creates_keystone_only_with_keystone(tmp_path: Path, example: Topology) -> None:
    with_keystone = {f.path: f.content for f in engine.render(example, fake_secrets())}
    assert "CREATE DATABASE IF NOT EXISTS keystone;" in with_keystone["sql/bootstrap.sql"]
    plain = make_topology(tmp_path, per_region=3)
    files = {f.path: f.content for f in engine.render(plain, fake_secrets())}
    assert "keystone" not in files["sql/bootstrap.sql"]
    assert not any("haproxy" in p or "keystone.conf" in p for p in files)


def test_zone_has_endpoints_hosts_and_a_content_serial(example: Topology, tmp_path: Path) -> None:
    from toolkit.render import zone

    text = zone.build(example)
    assert "$ORIGIN kgt.example." in text
    for name in ("keystone", "keystone.r1", "db.r2", "r3", "r1-db1", "r2-vip2"):
        assert any(line.split()[0] == name for line in text.splitlines() if line and line[0] not in ";$ "), name
    assert zone.endpoint_names(example)["keystone"] == [str(v.address) for v in example.vips]
    assert zone.nameservers(example) == ["r1-proxy1"]
    assert zone.build(example) == text
    other = make_topology(tmp_path)
    assert zone.build(other).split("SOA")[1] != text.split("SOA")[1]


def test_vrrp3_by_default_and_vrrp2_with_pass_authentication_only_when_asked(tmp_path: Path) -> None:
    """VRRPv3 has no authentication (RFC 5798) and sub-second adverts; VRRPv2 keeps PASS."""
    v3 = {f.path: f.content for f in engine.render(make_topology(tmp_path / "v3"), fake_secrets())}
    conf = v3["r1-proxy1/etc/keepalived/keepalived.conf"]
    assert "vrrp_version 3" in conf and "advert_int 0.3\n" in conf
    assert "authentication {" not in conf and "auth_pass" not in conf
    v2_topology = make_topology(tmp_path / "v2", defaults={"keepalived": {"vrrp_version": 2}})
    v2 = {f.path: f.content for f in engine.render(v2_topology, fake_secrets())}
    conf = v2["r1-proxy1/etc/keepalived/keepalived.conf"]
    assert "vrrp_version 2" in conf and "advert_int 1\n" in conf
    assert "auth_type PASS" in conf and f"auth_pass {fake_secret_values()['keepalived_password']}" in conf
