"""The rollout's parts that need no etcd: key layout, credentials, manifests, staging and checks, the agent's config."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import EXAMPLE, fake_secrets

from toolkit.errors import AgentError, StoreError
from toolkit.render import engine
from toolkit.render.select import Selection
from toolkit.rollout import apply as files
from toolkit.rollout.actions import ORDER, order_of
from toolkit.rollout.agent import AgentConfig
from toolkit.rollout.credentials import AgentCredentials, for_host
from toolkit.rollout.keys import Keys
from toolkit.rollout.manifest import Entry, Manifest, digest
from toolkit.topology import Topology, load


def test_every_hosts_keys_stay_under_its_own_prefix() -> None:
    keys = Keys("kgt-example")
    assert keys.manifest("r1-db1") == "/kgt/kgt-example/hosts/r1-db1/manifest"
    assert keys.blob("r1-db1", "ab") == "/kgt/kgt-example/hosts/r1-db1/blobs/ab"
    assert keys.status("r1-db1") == "/kgt/kgt-example/status/r1-db1/state"
    # a host's prefix ends with a slash: r1-db1's grant does not cover r1-db10's keys
    assert not keys.manifest("r1-db10").startswith(keys.host("r1-db1"))
    grants = dict(keys.agent_grants("r1-db1"))
    assert grants[keys.host("r1-db1")] == "read"
    assert grants["/kgt/kgt-example/status/r1-db1/"] == "readwrite"
    assert all(not p.startswith(keys.host("r2-db1")) for p in grants)


def test_credentials_are_derived_per_host_and_stay_out_of_repr() -> None:
    a = AgentCredentials.derive("site-secret", "kgt-example", "r1-db1", "kgt-agent-r1-db1")
    again = AgentCredentials.derive("site-secret", "kgt-example", "r1-db1", "kgt-agent-r1-db1")
    other = AgentCredentials.derive("site-secret", "kgt-example", "r2-db1", "kgt-agent-r2-db1")
    elsewhere = AgentCredentials.derive("site-secret", "other-site", "r1-db1", "kgt-agent-r1-db1")
    assert a == again
    assert len({a.password, other.password, elsewhere.password}) == 3
    assert len({a.file_key, other.file_key, elsewhere.file_key}) == 3
    assert a.password not in repr(a) and a.file_key.decode() not in repr(a)


def test_a_sealed_file_opens_only_with_its_hosts_key() -> None:
    a = AgentCredentials.derive("s", "site", "r1-db1", "u1")
    b = AgentCredentials.derive("s", "site", "r2-db1", "u2")
    sealed = a.seal(b"password = x\n")
    assert b"password" not in sealed
    assert a.open(sealed, "blob") == b"password = x\n"
    with pytest.raises(StoreError, match="not sealed with this host's key"):
        b.open(sealed, "blob")
    with pytest.raises(StoreError):
        a.open(sealed[:-2] + b"AA", "blob")


def test_the_rendered_agent_secret_is_what_publish_derives(example: Topology) -> None:
    rendered = {f.path: f for f in engine.render(example, fake_secrets())}
    text = rendered["r2-proxy1/etc/kgt/agent.secret"].content
    creds = for_host(example, fake_secrets(), "r2-proxy1")
    assert f"password: {creds.password}\n" in text and f"file_key: {creds.file_key.decode()}\n" in text
    assert rendered["r2-proxy1/etc/kgt/agent.secret"].mode == 0o600
    agent_yaml = rendered["r2-proxy1/etc/kgt/agent.yaml"].content
    assert "  - https://10.213.1.11:2379\n  - https://10.213.2.11:2379\n  - https://10.213.3.11:2379\n" in agent_yaml


def test_a_manifest_round_trips_and_compares_by_files(example: Topology) -> None:
    host_files = [f for f in engine.render(example, fake_secrets()) if f.host == "r1-proxy1"]
    m = Manifest.build("kgt-example", "r1-proxy1", 3, "2026-12-02T00:00:00+00:00", host_files)
    back = Manifest.from_bytes(m.to_bytes(), "test")
    assert back == m
    later = Manifest.build("kgt-example", "r1-proxy1", 4, "2026-12-03T00:00:00+00:00", host_files)
    assert later.same_files(m) and not later.same_files(None)
    haproxy = m.entry("/etc/haproxy/haproxy.cfg")
    assert haproxy is not None and haproxy.action == "reload" and haproxy.check == "haproxy -c -f {file}"
    assert haproxy.mode == 0o600 and b'"mode": "0600"' in m.to_bytes()
    for secret in fake_secrets().values.values():
        assert secret.encode() not in m.to_bytes()
    with pytest.raises(StoreError, match="not a kgt manifest"):
        Manifest.from_bytes(b'{"site": 1}', "hosts/x/manifest")


def test_every_published_file_says_what_the_agent_does_after_a_change(example: Topology) -> None:
    for f in engine.render(example, fake_secrets()):
        if f.host is None:
            continue
        assert f.action in ("restart", "reload", "apply", "none"), f.path
        if f.service not in ("kgt", "kgt-agent", "nftables", "sysctl"):
            assert f.service in ORDER, f.path
    assert order_of("nftables") < order_of("mariadb") < order_of("haproxy") < order_of("keystone")


def entry(path: str, check: str | None = None, mode: int = 0o640) -> Entry:
    return Entry(path, "", mode, "root", "haproxy", "reload", check)


def test_staged_files_have_their_mode_before_the_swap_and_the_swap_is_a_rename(tmp_path: Path) -> None:
    e = entry("/etc/demo/demo.cfg", mode=0o600)
    target = files.on_disk(tmp_path, e.path)
    target.parent.mkdir(parents=True)
    target.write_text("old\n")
    staged = files.stage(tmp_path, e, b"new\n")
    assert staged.name == "demo.cfg.kgt-new" and staged.stat().st_mode & 0o777 == 0o600
    assert target.read_text() == "old\n"
    files.keep_previous(tmp_path, tmp_path / "state", [e.path])
    inode = staged.stat().st_ino
    files.swap(tmp_path, [e.path])
    assert target.read_text() == "new\n" and target.stat().st_ino == inode and not staged.exists()
    files.restore_previous(tmp_path, tmp_path / "state", [e.path])
    assert target.read_text() == "old\n"


def test_a_file_that_did_not_exist_is_removed_again_by_a_rollback(tmp_path: Path) -> None:
    e = entry("/etc/demo/new.cfg")
    files.stage(tmp_path, e, b"x\n")
    files.keep_previous(tmp_path, tmp_path / "state", [e.path])
    files.swap(tmp_path, [e.path])
    assert files.on_disk(tmp_path, e.path).exists()
    files.restore_previous(tmp_path, tmp_path / "state", [e.path])
    assert not files.on_disk(tmp_path, e.path).exists()


def test_a_check_reads_the_other_staged_files_of_its_generation(tmp_path: Path) -> None:
    """HAProxy's config names its certificate: the check must see the staged certificate, not the old one."""
    cert = entry("/etc/demo/tls/server.pem")
    cfg = entry("/etc/demo/demo.cfg", check="grep -q NEW-CERT $(sed -n 's/^crt //p' {file})")
    staged = {
        cert.path: files.stage(tmp_path, cert, b"NEW-CERT\n"),
        cfg.path: files.stage(tmp_path, cfg, b"crt /etc/demo/tls/server.pem\n"),
    }
    assert files.run_checks([cert, cfg], staged) is None
    assert not list(tmp_path.rglob("*.check"))  # the probe copy is gone


def test_a_refused_check_says_which_file_which_check_and_what_it_said(tmp_path: Path) -> None:
    e = entry("/etc/demo/demo.cfg", check="echo 'line 3: unknown keyword' >&2; false {file}")
    staged = {e.path: files.stage(tmp_path, e, b"x\n")}
    refused = files.run_checks([e], staged)
    assert refused is not None
    assert refused.describe() == (
        "/etc/demo/demo.cfg: check `echo 'line 3: unknown keyword' >&2; false /etc/demo/demo.cfg` failed: "
        "line 3: unknown keyword"
    )
    files.discard_staged(tmp_path, [e.path])
    assert not list(tmp_path.rglob("*.kgt-new"))


def test_a_journal_survives_and_an_unreadable_one_names_nothing(tmp_path: Path) -> None:
    files.Journal(7, ("/a", "/b")).write(tmp_path)
    assert files.Journal.read(tmp_path) == files.Journal(7, ("/a", "/b"))
    files.Journal.file(tmp_path).write_text("{not json")
    assert files.Journal.read(tmp_path) is None
    files.Journal.clear(tmp_path)
    assert files.Journal.read(tmp_path) is None


def test_the_agent_config_is_read_from_the_rendered_file(tmp_path: Path) -> None:
    rendered = {f.path: f for f in engine.render(load(EXAMPLE), fake_secrets())}
    path = tmp_path / "agent.yaml"
    path.write_text(rendered["r3-db1/etc/kgt/agent.yaml"].content)
    config = AgentConfig.read(path)
    assert (config.site, config.host, config.services) == ("kgt-example", "r3-db1", "systemd")
    assert config.ca == Path("/etc/kgt/tls/ca.crt") and len(config.endpoints) == 3
    secret = tmp_path / "agent.secret"
    secret.write_text(rendered["r3-db1/etc/kgt/agent.secret"].content)
    config = AgentConfig(config.site, config.host, config.endpoints, config.ca, secret, tmp_path)
    assert config.credentials() == for_host(load(EXAMPLE), fake_secrets(), "r3-db1")


def test_a_bad_agent_config_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("site: x\n")
    with pytest.raises(AgentError, match=rf"^{path}: not an agent config \(KeyError"):
        AgentConfig.read(path)
    with pytest.raises(AgentError, match=rf"^{tmp_path / 'none.yaml'}: cannot read"):
        AgentConfig.read(tmp_path / "none.yaml")


def test_a_selection_names_hosts_in_file_order(example: Topology) -> None:
    chosen = Selection(regions=("r2",), hosts=("r1-db1",)).check(example)
    assert [h.name for h in chosen.chosen(example)] == ["r1-db1", "r2-db1", "r2-proxy1", "r2-proxy2"]
    assert chosen.keeps(example, None) and not chosen.keeps(example, "r3-db1")
    assert chosen.describe() == "region r2, host r1-db1"


def test_digest_is_sha256() -> None:
    assert digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_every_hosts_agent_gets_the_site_ca_and_no_key(example: Topology) -> None:
    from toolkit import tlsfiles

    assert example.tls is not None
    rendered = {f.path: f for f in engine.render(example, fake_secrets())}
    for host in example.hosts:
        ca = rendered[f"{host.name}{tlsfiles.AGENT_CA}"]
        assert ca.content == example.tls.ca_file.read_text() and "PRIVATE KEY" not in ca.content
