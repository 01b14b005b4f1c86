"""`kgt lab down` on the shared example lab leaves no container, network, volume or process."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.conftest import PROJECT, Lab

pytestmark = pytest.mark.integration


def docker_ids(*args: str) -> list[str]:
    out = subprocess.run(
        ["docker", *args, "--filter", f"label=com.docker.compose.project={PROJECT}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


@pytest.mark.takes_lab_down
def test_lab_down_leaves_nothing_behind(lab: Lab) -> None:
    containers = docker_ids("ps", "-aq", "--no-trunc")
    assert len(containers) == len(lab.topology.hosts) + 1  # every host and the WAN router
    done = lab.kgt("lab", "down")
    assert done.returncode == 0, done.stderr
    assert docker_ids("ps", "-aq") == []
    assert docker_ids("network", "ls", "-q") == []
    assert docker_ids("volume", "ls", "-q") == []
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert not [c for c in containers if c in processes], "a container shim or process is still running"
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert "blackhole 10.213.0.0/16" in routes
    assert not [line for line in routes.splitlines() if line.startswith("10.213.0.0/16 dev")]
