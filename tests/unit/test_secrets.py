"""The secrets file: what a topology needs, init, rotate, read, mask; values never shown."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import yaml
from builders import fake_secret_values, make_topology, topology_data, write_topology

from toolkit import secretstore
from toolkit.errors import SecretsError
from toolkit.topology import Topology, load


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_required_follows_the_roles(example: Topology, tmp_path: Path) -> None:
    # VRRPv3 (the default) has no authentication, so keepalived_password only for VRRPv2 proxies.
    everything = [s.name for s in secretstore.SPECS]
    assert [s.name for s in secretstore.required(example)] == [n for n in everything if n != "keepalived_password"]
    vrrp2 = make_topology(tmp_path / "v2", defaults={"keepalived": {"vrrp_version": 2}})
    etcd = ("etcd_root_password", "agent_secret")  # the builder's topologies have no etcd member
    assert [s.name for s in secretstore.required(vrrp2)] == [n for n in everything if n not in etcd]
    galera_only = make_topology(tmp_path, per_region=1)
    assert [s.name for s in secretstore.required(galera_only)] == [
        "admin_password",
        "sst_password",
        "health_password",
        "verify_password",
    ]


def test_init_creates_a_private_complete_file(example: Topology, tmp_path: Path) -> None:
    path = tmp_path / "s" / "secrets.yaml"
    added = secretstore.init(example, path)
    assert added == [s.name for s in secretstore.required(example)]
    assert mode(path) == 0o600
    values = secretstore.read(path).values
    assert set(values) == set(added)
    assert all(len(v) >= 24 for v in values.values())
    assert len(set(values.values())) == len(values)
    assert [p.name for p in path.parent.iterdir()] == ["secrets.yaml"]  # no temporary left
    # VRRPv2 proxies need the PASS secret too: keepalived uses its first 8 characters.
    vrrp2 = make_topology(tmp_path / "v2", defaults={"keepalived": {"vrrp_version": 2}})
    assert secretstore.init(vrrp2, path) == ["keepalived_password"]
    assert len(secretstore.read(path).values["keepalived_password"]) == 8


def test_init_keeps_existing_values_and_adds_missing(example: Topology, tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    secretstore.write(path, {"admin_password": "FAKE-keep-me", "custom": "FAKE-mine"})
    added = secretstore.init(example, path)
    assert "admin_password" not in added and "sst_password" in added
    values = secretstore.read(path).values
    assert values["admin_password"] == "FAKE-keep-me" and values["custom"] == "FAKE-mine"
    assert secretstore.init(example, path) == []


def test_rotate_changes_one_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    secretstore.write(path, fake_secret_values())
    secretstore.rotate(path, "sst_password")
    after = secretstore.read(path).values
    before = fake_secret_values()
    assert after["sst_password"] != before["sst_password"]
    assert {k: v for k, v in after.items() if k != "sst_password"} == {
        k: v for k, v in before.items() if k != "sst_password"
    }
    assert mode(path) == 0o600


def test_rotate_unknown_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    secretstore.write(path, fake_secret_values())
    with pytest.raises(SecretsError, match="unknown secret 'nope'"):
        secretstore.rotate(path, "nope")


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="secrets file not found"):
        secretstore.read(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: b\n  c: [d\n")
    with pytest.raises(SecretsError, match=r"bad.yaml:2: invalid YAML"):
        secretstore.read(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(SecretsError, match="mapping of names to text values"):
        secretstore.read(bad)
    bad.write_text("a: 1\n")
    with pytest.raises(SecretsError, match="mapping of names to text values"):
        secretstore.read(bad)
    bad.write_text("")
    assert secretstore.read(bad).values == {}


def test_for_topology_reports_every_missing_secret(tmp_path: Path) -> None:
    t = load(write_topology(tmp_path, topology_data()))
    secretstore.write(tmp_path / "secrets.yaml", {"admin_password": "FAKE"})
    with pytest.raises(SecretsError) as info:
        secretstore.for_topology(t)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'secrets.yaml'}: missing secrets sst_password, health_password")
    assert "FAKE" not in message


def test_for_topology_creates_when_the_topology_says_so(tmp_path: Path) -> None:
    data = topology_data()
    data["secrets"] = {"file": "lab/secrets.yaml", "create": True}
    t = load(write_topology(tmp_path, data))
    secrets = secretstore.for_topology(t)
    assert secrets.path == tmp_path / "lab" / "secrets.yaml"
    assert mode(secrets.path) == 0o600
    assert secretstore.for_topology(t).values == secrets.values  # created once, then read


def test_for_topology_does_not_create_without_the_flag(tmp_path: Path) -> None:
    data = topology_data()
    data["secrets"] = {"file": "other.yaml"}
    t = load(write_topology(tmp_path, data))
    with pytest.raises(SecretsError, match="secrets file not found"):
        secretstore.for_topology(t)
    assert not (tmp_path / "other.yaml").exists()


def test_mask_replaces_every_value_longest_first() -> None:
    s = secretstore.Secrets(Path("s.yaml"), {"a": "FAKE", "b": "FAKE-LONGER", "empty": ""})
    assert s.mask("x FAKE-LONGER y FAKE z") == "x ******** y ******** z"
    assert s.mask("nothing secret") == "nothing secret"


def test_missing_secret_lookup_names_it() -> None:
    s = secretstore.Secrets(Path("s.yaml"), {})
    with pytest.raises(SecretsError, match=re.escape("s.yaml: missing secret 'sst_password'")):
        s["sst_password"]


def test_written_file_is_yaml_with_a_warning_comment(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    secretstore.write(path, {"b": "2", "a": "1"})
    text = path.read_text()
    assert text.startswith("# kgt secrets: keep this file private")
    assert yaml.safe_load(text) == {"a": "1", "b": "2"}


# --- the commands never print a value -----------------------------------------------


def test_secrets_init_and_rotate_commands_never_print_values(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topo = write_topology(tmp_path, topology_data())
    path = tmp_path / "fresh.yaml"
    result = kgt("secrets", "init", topo, "--file", path)
    assert result.code == 0
    assert "added admin_password" in result.out
    values = secretstore.read(path).values
    rotated = kgt("secrets", "rotate", "keystone_db_password", "--file", path)
    assert rotated.code == 0 and "rotated keystone_db_password" in rotated.out
    new_values = secretstore.read(path).values
    again = kgt("secrets", "init", topo, "--file", path)
    assert "complete, nothing added" in again.out
    shown = result.out + result.err + rotated.out + rotated.err + again.out + again.err
    for value in [*values.values(), *new_values.values()]:
        assert value not in shown


def test_secrets_rotate_command_errors(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.yaml"
    secretstore.write(path, fake_secret_values())
    result = kgt("secrets", "rotate", "nope", "--file", path)
    assert result.code == 1 and result.err.startswith(f"{path}: unknown secret 'nope'")
    assert kgt("secrets", "rotate", "sst_password").code == 2  # --file is required


@pytest.mark.parametrize("value", ["it's", "a b", "p@ss", "x#y", "a/b", "50%", 'q"', "back\\slash", "é"])
def test_read_rejects_values_unsafe_in_configs_naming_the_line_not_the_value(tmp_path: Path, value: str) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(yaml.safe_dump({"admin_password": "fine-value", "sst_password": value}, allow_unicode=True))
    with pytest.raises(SecretsError) as caught:
        secretstore.read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: secret 'sst_password': only letters, digits and - _ . ~")
    assert value not in message


def test_generated_values_are_always_safe(example: Topology, tmp_path: Path) -> None:
    # token_urlsafe may begin with "-": such a value must never be handed over as an argument.
    for _ in range(50):
        path = tmp_path / "s.yaml"
        path.unlink(missing_ok=True)
        secretstore.init(example, path)
        assert all(secretstore.SAFE_VALUE.fullmatch(v) for v in secretstore.read(path).values.values())
