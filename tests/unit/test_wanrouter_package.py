"""The WAN router runs alone: stdlib imports only, from a bare copy of its folder and as the lab starts it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "toolkit" / "lab" / "wanrouter"
MODULES = sorted(PACKAGE.glob("*.py"))
CONFIG = {"regions": {"r1": "10.213.1.0/24", "r2": "10.213.2.0/24"}, "rules": [{"between": None, "delay_ms": 7}]}


def imports(path: Path) -> list[tuple[int, str]]:
    """(level, module) of every import in *path*; level > 0 is a relative import."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_the_package_has_its_modules() -> None:
    names = {p.stem for p in MODULES}
    assert {"__init__", "__main__", "regions", "rules", "config", "delay", "schedule", "shaper"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_module_imports_only_the_stdlib_and_its_siblings(path: Path) -> None:
    outside = [
        name for level, name in imports(path) if level == 0 and name.partition(".")[0] not in sys.stdlib_module_names
    ]
    assert outside == []
    # A relative import may not climb out of the package (`from .. import x`).
    assert all(level <= 1 for level, _ in imports(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_is_named_like_a_stdlib_one(path: Path) -> None:
    assert path.stem not in sys.stdlib_module_names


def run_isolated(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The router from a bare copy of its folder: no site-packages, no PYTHONPATH, no kgt."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(copy), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=copy.parent,
        check=False,
    )


@pytest.fixture
def bare_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "wanrouter"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_bare_copy_runs_with_the_stdlib_alone(bare_copy: Path) -> None:
    config = bare_copy.parent / "wan.json"
    config.write_text(json.dumps(CONFIG))
    helped = run_isolated(bare_copy, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "setup,run,teardown,status,check" in helped.stdout
    checked = run_isolated(bare_copy, "check", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "2 regions; r1<->r2 delay=7ms\n"


def test_a_bad_config_is_one_line_and_status_2(bare_copy: Path) -> None:
    config = bare_copy.parent / "wan.json"
    config.write_text('{"regions": {"r1": "10.213.1.0/33"}}')
    checked = run_isolated(bare_copy, "check", "--config", str(config))
    assert checked.returncode == 2
    assert checked.stdout == ""
    assert checked.stderr.startswith("kgt-wan: error: region 'r1':")
    assert checked.stderr.count("\n") == 1 and "Traceback" not in checked.stderr


def test_it_starts_as_the_lab_starts_it(tmp_path: Path) -> None:
    # The lab runs `python3 -m toolkit.lab.wanrouter run ...` in the router container with the
    # system python3 and PYTHONPATH=/opt/kgt/src (docker/Dockerfile, lab/network.py): no
    # site-packages, so neither the toolkit's dependencies nor its parent packages' imports.
    config = tmp_path / "wan.json"
    config.write_text(json.dumps(CONFIG))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    checked = subprocess.run(
        [sys.executable, "-S", "-m", "toolkit.lab.wanrouter", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "2 regions; r1<->r2 delay=7ms\n"


def test_the_lab_start_command_names_the_package() -> None:
    network = (ROOT / "toolkit" / "lab" / "network.py").read_text(encoding="utf-8")
    assert "python3 -m toolkit.lab.wanrouter run --config" in network
    assert (PACKAGE / "__main__.py").is_file()
