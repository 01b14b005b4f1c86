"""Lab service helpers that can be checked without Docker: how secrets reach commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.lab import services
from toolkit.lab.docker import Result


class LocalHost:
    """Stands in for a LabHost: runs the command with the local `sh`, recording it."""

    name = "local"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, *, timeout: float = 60, input: str | bytes | None = None) -> Result:
        self.commands.append(command)
        done = subprocess.run(["sh", "-c", command], input=input, capture_output=True, text=True, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("password", ["-starts-with-a-dash", "--bootstrap-url-x", "plain.value~_"])
def test_keystone_manage_hands_a_secret_over_stdin_never_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    fake = tmp_path / "keystone-manage"
    record = tmp_path / "seen"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps([sys.argv[1:], os.environ.get('OS_BOOTSTRAP_PASSWORD')]))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(services, "KEYSTONE_MANAGE", str(fake))
    host = LocalHost()
    services.keystone_manage(host, "bootstrap --bootstrap-region-id r1", secret_env=("OS_BOOTSTRAP_PASSWORD", password))
    argv, env = json.loads(record.read_text())
    assert argv == ["bootstrap", "--bootstrap-region-id", "r1"]
    assert env == password
    assert all(password not in command for command in host.commands)


def test_keystone_manage_failure_names_the_subcommand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "KEYSTONE_MANAGE", "false")
    with pytest.raises(RuntimeError, match="keystone-manage db_sync failed"):
        services.keystone_manage(LocalHost(), "db_sync")
