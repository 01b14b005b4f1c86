"""`kgt lab up` refuses bad input before it touches Docker, and says how to get an engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def kgt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


def no_docker_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which `docker` is a stub that records being called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "docker"
    stub.write_text(f"#!/bin/sh\necho called >> {tmp_path / 'docker-called'}\nexit 1\n")
    stub.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_invalid_topology_fails_before_docker(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "topology" / "example.yaml").read_text().replace("10.213.2.11", "10.213.9.11"))
    done = kgt("lab", "up", str(bad), "--lab-dir", str(tmp_path / "lab"), env=no_docker_env(tmp_path))
    assert done.returncode == 1
    assert f"{bad}:" in done.stderr and "not a host address of region 'r2'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "docker-called").exists()
    assert not (tmp_path / "lab").exists()


def test_topology_outside_the_lab_range_is_refused(tmp_path: Path) -> None:
    done = kgt(
        "lab",
        "up",
        str(ROOT / "topology" / "catalyst.yaml"),
        "--secrets",
        str(tmp_path / "s.yaml"),
        "--lab-dir",
        str(tmp_path / "lab"),
        env=no_docker_env(tmp_path),
    )
    assert done.returncode == 1
    assert "outside the lab range 10.213.0.0/16" in done.stderr
    assert not (tmp_path / "docker-called").exists()


def test_no_engine_says_how_to_get_one(tmp_path: Path) -> None:
    secrets = tmp_path / "s.yaml"
    assert kgt("secrets", "init", str(ROOT / "topology" / "example.yaml"), "--file", str(secrets)).returncode == 0
    done = kgt(
        "lab",
        "up",
        str(ROOT / "topology" / "example.yaml"),
        "--secrets",
        str(secrets),
        "--lab-dir",
        str(tmp_path / "lab"),
        env=no_docker_env(tmp_path),
    )
    assert done.returncode == 1
    assert "no Docker engine answers" in done.stderr and "docker/engine.sh" in done.stderr
    assert "Traceback" not in done.stderr
