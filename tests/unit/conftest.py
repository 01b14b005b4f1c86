"""Shared fixtures of the unit tests: the repository on sys.path, topologies, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout without the package installed
    sys.path.insert(0, str(ROOT))
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from builders import Result  # noqa: E402

from toolkit import cli  # noqa: E402
from toolkit.topology import Topology, load  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def example_pki() -> None:
    """The example's site PKI (`tls: {create: true}`), as `kgt render` makes it first: tests that
    render the example through the engine read its certificates, which the engine never creates."""
    from toolkit.pki.store import init

    init(load(ROOT / "topology" / "example.yaml"))


@pytest.fixture(scope="session")
def example() -> Topology:
    """topology/example.yaml, loaded."""
    return load(ROOT / "topology" / "example.yaml")


@pytest.fixture(scope="session")
def catalyst() -> Topology:
    """topology/catalyst.yaml, loaded."""
    return load(ROOT / "topology" / "catalyst.yaml")


@pytest.fixture
def kgt(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run kgt in-process (fast): `kgt("validate", path)` → Result(code, out, err)."""

    def run(*args: object) -> Result:
        capsys.readouterr()
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def kgt_process() -> Callable[..., Result]:
    """Run kgt as a subprocess, as a user does: `python3 -m toolkit.cli ARGS`."""

    def run(*args: object, cwd: Path = ROOT) -> Result:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-m", "toolkit.cli", *(str(a) for a in args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
