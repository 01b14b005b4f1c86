"""The labs of the integration tests: each test says which one it needs, and gets it whatever ran before.

- `lab`: the shared example lab (topology/example.yaml), booted with `kgt lab up` by the
  session fixture on first use, and booted again by `lab` when an earlier test took it
  down (a `takes_lab_down` test, or an `own_lab` test making room for its own lab).
- `@pytest.mark.takes_lab_down` with `lab`: the test takes the shared lab down itself.
- `@pytest.mark.own_lab(why)`: the test boots a lab of its own and tears it down; only one
  lab can exist at a time, so the shared lab is taken down first (`exclusive_lab_slot`).
- none of these: the test needs no lab.

tests/conftest.py orders the run by these stages so that the example lab is booted once;
the order is for speed only (see `--test-order` there).

`kgt lab up` writes the compose file and starts the services in dependency order;
pytest-docker then owns the compose project (its setup is a no-op `up` on containers that
already run, its cleanup `down -v` is the safety net if a test run dies). Set
KGT_LAB_REUSE=1 to keep a running lab between runs while developing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topology" / "example.yaml"
LAB_DIR = Path(os.environ.get("KGT_LAB_DIR", "/tmp/kgt-test-lab"))
REUSE = os.environ.get("KGT_LAB_REUSE") == "1"
PROJECT = "kgt-kgt-example"


def kgt(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the kgt CLI as a subprocess, as a user would."""
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kgt {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def _engine_ready() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine (run `bash docker/engine.sh`)"
    if subprocess.run(["docker", "image", "inspect", "kgt-lab:latest"], capture_output=True, check=False).returncode:
        return "image kgt-lab:latest missing (run `bash docker/engine.sh`)"
    return None


def engine_or_skip() -> None:
    """Skip (fail under CI) without a Docker engine and the lab image; install the lab range's blackhole route."""
    reason = _engine_ready()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"integration tests need the lab: {reason}")
        pytest.skip(reason)
    subprocess.run(["ip", "route", "replace", "blackhole", "10.213.0.0/16", "metric", "4000"], check=True)


def project_running(project: str) -> bool:
    """Whether any container of the compose project `project` runs."""
    out = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return bool(out.strip())


def lab_running() -> bool:
    """Whether any container of the example lab (`PROJECT`) runs."""
    return project_running(PROJECT)


def exclusive_lab_slot(why: str) -> None:
    """Make room for a test that boots its own lab: only one lab can exist at a time.

    Skips without an engine (fails under CI, like the session fixture) or when a developer's
    reused example lab is up; takes the session's example lab down if it is still up; installs
    the blackhole route for the lab range.
    """
    engine_or_skip()
    if lab_running():
        if REUSE:
            pytest.skip(f"the example lab is up and reused (KGT_LAB_REUSE=1): {why}")
        down = kgt("lab", "down", "--lab-dir", str(LAB_DIR), timeout=300)
        assert down.returncode == 0, down.stderr


@contextlib.contextmanager
def own_lab(topology: Path, tmp_path: Path, *, timeout: float) -> Iterator[Path]:
    """Boot `topology` into `tmp_path/lab` with secrets of its own, for a test marked own_lab; the lab directory.

    The lab is taken down however the test ends, and no container of its project may be left.
    """
    from toolkit.lab.compose import project_name
    from toolkit.topology import load

    project = project_name(load(topology))
    lab_dir = tmp_path / "lab"
    secrets = tmp_path / f"{topology.stem}.secrets.yaml"
    try:
        up = kgt("lab", "up", str(topology), "--secrets", str(secrets), "--lab-dir", str(lab_dir), timeout=timeout)
        sys.stderr.write(up.stdout[-3000:])
        assert up.returncode == 0, f"{up.stdout[-2000:]}\n{up.stderr[-2000:]}"
        yield lab_dir
    finally:
        if (lab_dir / "lab.json").exists() or project_running(project):
            kgt("lab", "down", "--lab-dir", str(lab_dir), timeout=300)
    assert not project_running(project)


def drill_on(
    lab_dir: Path, report: Path, *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], list[dict[str, Any]]]:
    """Run `kgt drill ARGS` on the lab in `lab_dir`: the run, its report.json, the expectations not met."""
    done = kgt(*args, "--lab-dir", str(lab_dir), "--report", str(report), timeout=timeout)
    sys.stderr.write(done.stdout[-3000:] + done.stderr[-1500:])
    data = json.loads((report / "report.json").read_text())
    return done, data, [e for e in data["expectations"] if e["ok"] is not True]


@dataclass
class Lab:
    """The running example lab and handles on it."""

    topology_path: Path
    lab_dir: Path
    up_seconds: float

    @property
    def topology(self):  # type: ignore[no-untyped-def]
        from toolkit.topology import load

        return load(self.topology_path)

    @property
    def secrets(self):  # type: ignore[no-untyped-def]
        from toolkit import secretstore

        return secretstore.for_topology(self.topology)

    def connect(self, address: str, port: int = 3306, user: str = "kgt_admin", timeout: float = 3) -> Any:
        """A MariaDB session from this host (the lab's monitoring and admin address) as `user`,
        over TLS verified against the site CA on a TLS site, as kgt's own clients connect."""
        import pymysql

        from toolkit import tlsclient
        from toolkit.accounts import PASSWORDS

        topology = self.topology
        ca = topology.client_ca
        return pymysql.connect(
            host=address,
            port=port,
            user=user,
            password=self.secrets[PASSWORDS[user]],
            connect_timeout=timeout,
            read_timeout=timeout + 2,
            write_timeout=timeout + 2,
            autocommit=True,
            ssl=tlsclient.context(ca) if ca is not None else None,
        )

    def kgt(self, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run kgt with `--lab-dir` appended for lab sub-commands."""
        extra = ["--lab-dir", str(self.lab_dir)] if args and args[0] == "lab" else []
        return kgt(*args, *extra, timeout=timeout, check=check)

    def host(self, name: str):  # type: ignore[no-untyped-def]
        from toolkit.lab.host import LabHost

        return LabHost(name)

    def services(self, name: str):  # type: ignore[no-untyped-def]
        """The host's services, driven as lab boot and the drills drive them (toolkit.services)."""
        from toolkit.lab.services import LabServices

        topology = self.topology
        return LabServices(topology, topology.host(name))


def boot_example_lab() -> float:
    """`kgt lab up` the example lab into LAB_DIR, removing a leftover example lab first; the seconds taken."""
    started = time.monotonic()
    if lab_running():  # a lab left by an earlier run, maybe from another lab dir
        from toolkit.lab.docker import remove_project

        remove_project(PROJECT)
    done = kgt("lab", "up", str(TOPOLOGY), "--lab-dir", str(LAB_DIR), timeout=900)
    sys.stderr.write(done.stdout + done.stderr)
    assert done.returncode == 0, f"kgt lab up failed:\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - started


@pytest.fixture(scope="session")
def lab_booted() -> Iterator[Lab]:
    engine_or_skip()
    up_seconds = 0.0 if REUSE and lab_running() else boot_example_lab()
    lab = Lab(TOPOLOGY, LAB_DIR, up_seconds)
    try:
        yield lab
    finally:
        if not REUSE and lab_running():
            kgt("lab", "down", "--lab-dir", str(LAB_DIR), timeout=300)


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    # pytest-docker runs it through the shell: give a loaded engine as long as `kgt lab down` does.
    return "COMPOSE_HTTP_TIMEOUT=300 docker-compose"


@pytest.fixture(scope="session")
def docker_compose_file(lab_booted: Lab) -> str:
    return str(lab_booted.lab_dir / "compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return PROJECT


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up -d --no-build"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return [] if REUSE else ["down -v -t 5"]


@pytest.fixture
def lab(lab_booted: Lab, docker_services) -> Lab:  # type: ignore[no-untyped-def]
    """The example lab, up and healthy: booted again if an earlier test took it down."""
    if not lab_running():
        lab_booted.up_seconds = boot_example_lab()
    return lab_booted


@pytest.fixture(autouse=True)
def own_lab_slot(request: pytest.FixtureRequest) -> None:
    """For a test marked `own_lab(why)`: room for the lab it boots (the shared lab is taken down first)."""
    marker = request.node.get_closest_marker("own_lab")
    if marker is not None:
        exclusive_lab_slot(str(marker.args[0]) if marker.args else "only one lab can exist at a time")
