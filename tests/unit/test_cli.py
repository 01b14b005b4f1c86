"""The core commands as a user runs them: exit codes, one-line errors, schema, render."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import yaml
from builders import CATALYST, EXAMPLE, EXAMPLE_SECRETS, fake_secret_values, topology_data, write_topology

from toolkit import secretstore


def test_validate_ok(kgt) -> None:  # type: ignore[no-untyped-def]
    result = kgt("validate", EXAMPLE)
    assert result.code == 0
    assert result.out == f"{EXAMPLE}: ok: 3 regions, 9 hosts, 3 voters, total weight 3\n"
    assert result.err == ""


def test_validate_catalyst(kgt) -> None:  # type: ignore[no-untyped-def]
    result = kgt("validate", CATALYST)
    assert result.code == 0 and "3 regions, 24 hosts, 9 voters, total weight 9" in result.out


def test_validate_warnings_exit_0_and_name_the_failure(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_topology(tmp_path, topology_data(regions=2))
    result = kgt("validate", path)
    assert result.code == 0
    assert "ok: 2 regions" in result.out
    warnings = result.err.splitlines()
    assert len(warnings) == 3
    assert all(re.match(rf"^{re.escape(str(path))}:\d+: regions: warning: ", w) for w in warnings)
    assert "losing region 'r1' (weight 1 of 2) loses Primary everywhere" in result.err
    assert "total Galera weight 2 is even: a partition between {r1} and the rest" in result.err


def test_validate_even_weight_three_regions(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_topology(tmp_path, topology_data(weights=[2, 1, 1]))
    result = kgt("validate", path)
    assert result.code == 0
    assert result.err.count("warning:") == 1
    assert "total Galera weight 4 is even: a partition between {r1} and the rest (weight 2 each)" in result.err


def test_validate_errors_exit_1(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = topology_data()
    data["regions"][0]["hosts"][0]["roles"] = ["galera", "keepalived"]
    result = kgt("validate", write_topology(tmp_path, data))
    assert result.code == 1
    assert "keepalived without haproxy" in result.err
    assert result.out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["validate", "a.yaml", "b.yaml"],
        ["render", "topology/example.yaml"],
        ["diff", "topology/example.yaml"],
        ["analyze", "topology/example.yaml", "--format", "xml"],
        ["nosuchcommand"],
        ["validate", "--nope", "topology/example.yaml"],
        ["secrets", "rotate"],
    ],
)
def test_usage_errors_exit_2(kgt, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = kgt(*args)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert result.err.strip()


def test_missing_topology_is_exit_1_with_the_file(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = kgt("validate", tmp_path / "nope.yaml")
    assert result.code == 1
    assert result.err == f"{tmp_path / 'nope.yaml'}: no such file\n"


def test_help_and_version(kgt) -> None:  # type: ignore[no-untyped-def]
    result = kgt("--help")
    assert result.code == 0
    for command in ("validate", "analyze", "render", "diff", "secrets", "schema"):
        assert command in result.out
    assert kgt("--version").code == 0


# --- schema -------------------------------------------------------------------------


def test_schema_accepts_the_shipped_topologies_and_rejects_bad_ones(kgt) -> None:  # type: ignore[no-untyped-def]
    jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (a test dependency)")
    result = kgt("schema")
    assert result.code == 0
    schema = json.loads(result.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for path in (EXAMPLE, CATALYST):
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path
    data = yaml.safe_load(EXAMPLE.read_text())
    for mutate in (
        lambda d: d.update(regoins=[]),
        lambda d: d["wan"].update(rtt="fast"),
        lambda d: d["regions"][0]["hosts"][0].update(roles=["galera-node"]),
        lambda d: d["regions"][0]["hosts"][0].update(address="10.0.0.300"),
        lambda d: d.pop("regions"),
    ):
        broken = json.loads(json.dumps(data))
        mutate(broken)
        assert not validator.is_valid(broken)
    assert kgt("schema").out == result.out  # stable


# --- render -------------------------------------------------------------------------


@pytest.mark.parametrize("topology", [EXAMPLE, CATALYST], ids=["example", "catalyst"])
def test_render_shipped_topologies(kgt, tmp_path: Path, topology: Path) -> None:  # type: ignore[no-untyped-def]
    secrets = tmp_path / "secrets.yaml"
    secretstore.write(secrets, fake_secret_values())
    out = tmp_path / "out"
    result = kgt("render", topology, "-o", out, "--secrets", secrets)
    assert result.code == 0, result.err
    hosts = 9 if topology == EXAMPLE else 24
    assert re.fullmatch(
        rf"rendered \d+ files for {hosts} hosts \(the whole site\) into {re.escape(str(out))}\n", result.out
    )
    assert (out / "manifest.json").is_file()
    for value in fake_secret_values().values():
        assert value not in result.out + result.err


def test_render_refuses_a_foreign_directory_without_force(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    result = kgt("render", EXAMPLE, "-o", out, "--secrets", EXAMPLE_SECRETS)
    assert result.code == 1
    assert result.err == (
        f"kgt: {out}: directory is not empty and was not written by kgt (use --force to replace it)\n"
    )
    assert (out / "notes.txt").exists()
    forced = kgt("render", EXAMPLE, "-o", out, "--secrets", EXAMPLE_SECRETS, "--force")
    assert forced.code == 0 and not (out / "notes.txt").exists()


def test_render_creates_lab_secrets_privately(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = topology_data()
    data["secrets"] = {"file": "lab.secrets.yaml", "create": True}
    path = write_topology(tmp_path, data)
    result = kgt("render", path, "-o", tmp_path / "out")
    assert result.code == 0
    created = tmp_path / "lab.secrets.yaml"
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    for value in secretstore.read(created).values.values():
        assert value not in result.out + result.err


def test_render_missing_secrets_file(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_topology(tmp_path, topology_data())  # secrets.create is false
    result = kgt("render", path, "-o", tmp_path / "out", "--secrets", tmp_path / "none.yaml")
    assert result.code == 1
    assert result.err.startswith(f"{tmp_path / 'none.yaml'}: secrets file not found")
    assert not (tmp_path / "out").exists()


def test_internal_errors_are_one_line_exit_70(kgt, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from toolkit.analysis import quorum

    def boom(*_: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(quorum, "scenarios", boom)
    result = kgt("analyze", EXAMPLE)
    assert result.code == 70
    assert result.err == "kgt: internal error: RuntimeError: kaput\n"


def test_module_runs_as_a_script(kgt_process) -> None:  # type: ignore[no-untyped-def]
    result = kgt_process("validate", EXAMPLE)
    assert result.code == 0 and "ok: 3 regions" in result.out


@pytest.mark.parametrize(
    "args, code",
    [
        (["--bogus"], 2),  # core
        (["validate", "--bogus", EXAMPLE], 2),
        (["secrets", "--bogus"], 2),
        (["lab", "--bogus"], 2),
        (["lab", "status", "--format", "xml"], 2),
        (["health", "--bogus"], 2),
        (["health", "check", "--port", "0"], 2),
        (["check", "--bogus"], 3),  # a check that cannot run is UNKNOWN
        (["check", "quorum", EXAMPLE, "--bogus"], 3),
    ],
)
def test_each_family_has_its_usage_exit_code(kgt, args: list[str], code: int) -> None:  # type: ignore[no-untyped-def]
    result = kgt(*args)
    assert result.code == code, result
    assert "Error:" in result.err and "Traceback" not in result.err and result.out == ""


def test_family_group_exits_with_its_code_and_prints_with_its_handler() -> None:
    import click
    from click.testing import CliRunner

    from toolkit.cli_options import FamilyGroup

    seen: list[str] = []

    @click.group(cls=FamilyGroup, usage_exit=7, on_usage_error=lambda exc, ctx: seen.append(exc.format_message()))
    def family() -> None:
        """A toy family."""

    @family.command()
    @click.argument("name")
    def hello(name: str) -> None:
        click.echo(f"hello {name}")

    runner = CliRunner()
    assert runner.invoke(family, ["hello", "you"]).output == "hello you\n"
    assert runner.invoke(family, ["hello"]).exit_code == 7
    assert runner.invoke(family, ["nosuch"]).exit_code == 7
    assert runner.invoke(family, ["--bogus"]).exit_code == 7
    assert seen == ["Missing argument 'NAME'.", "No such command 'nosuch'.", "No such option '--bogus'."]


def test_core_commands_take_the_legacy_topology_option_with_a_warning(kgt) -> None:  # type: ignore[no-untyped-def]
    result = kgt("validate", "--topology", EXAMPLE)
    assert result.code == 0
    assert result.out == f"{EXAMPLE}: ok: 3 regions, 9 hosts, 3 voters, total weight 3\n"
    assert result.err.startswith("kgt: --topology is deprecated") and result.err.count("\n") == 1
    both = kgt("validate", EXAMPLE, "--topology", EXAMPLE)
    assert both.code == 2 and "give the topology once" in both.err


def test_check_errors_say_their_state_once() -> None:
    from toolkit.errors import CannotCheck, NothingReachable

    assert str(CannotCheck("no Primary")) == "UNKNOWN: no Primary"
    assert str(NothingReachable("cannot connect")) == "CRITICAL: cannot connect"
    assert CannotCheck("x").reason == "x" and CannotCheck("x").exit_code == 3 and NothingReachable("x").exit_code == 2
    # The state is said once, by the class: no message raised in toolkit/ starts with one.
    import ast

    raised = []
    for path in (Path(__file__).resolve().parents[2] / "toolkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("CannotCheck", "NothingReachable"):
                first = node.args[0] if node.args else None
                part = first.values[0] if isinstance(first, ast.JoinedStr) and first.values else first
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    raised.append((path.name, part.value))
    assert raised and not [r for r in raised if r[1].startswith(("UNKNOWN", "CRITICAL"))], raised


def test_render_and_diff_of_one_region_touch_only_its_hosts_and_the_shared_files(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secrets = tmp_path / "secrets.yaml"
    secretstore.write(secrets, fake_secret_values())
    out = tmp_path / "out"
    result = kgt("render", EXAMPLE, "-o", out, "--secrets", secrets, "--region", "r2")
    assert result.code == 0, result.err
    assert "for 3 hosts (region r2)" in result.out
    assert sorted(p.name for p in out.iterdir()) == ["dns", "manifest.json", "r2-db1", "r2-proxy1", "r2-proxy2", "sql"]
    # the rest of the site is not "removed" from a directory that holds one region
    assert kgt("diff", EXAMPLE, "--against", out, "--secrets", secrets, "--region", "r2").out == "no changes\n"
    one = kgt("diff", EXAMPLE, "--against", out, "--secrets", secrets, "--host", "r1-db1")
    assert one.code == 0
    assert {line.split("/", 1)[0] for line in one.out.splitlines() if line.startswith("added: ")} == {"added: r1-db1"}
    assert "removed:" not in one.out
    full = kgt("diff", EXAMPLE, "--against", out, "--secrets", secrets)
    assert "added: r3-proxy2/etc/haproxy/haproxy.cfg" in full.out


def test_an_unknown_region_or_host_is_one_line_and_writes_nothing(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secrets = tmp_path / "secrets.yaml"
    secretstore.write(secrets, fake_secret_values())
    result = kgt("render", EXAMPLE, "-o", tmp_path / "out", "--secrets", secrets, "--region", "r9")
    assert result.code == 2
    assert result.err == "kgt: --region r9: no such region in the topology (regions: r1, r2, r3)\n"
    assert not (tmp_path / "out").exists()
    result = kgt("diff", EXAMPLE, "--against", tmp_path, "--secrets", secrets, "--host", "r1-db")
    assert result.code == 2
    assert "--host r1-db: no such host in the topology (did you mean 'r1-db1'?)" in result.err
