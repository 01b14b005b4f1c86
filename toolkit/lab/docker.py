"""Thin, deadline-bound wrappers around the `docker` and `docker-compose` command lines."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import LabError

IMAGE = "kgt-lab:latest"
ENGINE_HINT = (
    "no Docker engine answers: run `sudo bash docker/engine.sh` (installs docker.io and "
    "docker-compose, starts dockerd --iptables=false, builds the kgt-lab image)"
)


@dataclass(frozen=True)
class Result:
    """What a command returned."""

    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Whether it exited 0."""
        return self.rc == 0


def run(
    args: list[str], *, timeout: float = 120, input: str | bytes | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run a command (`env`: added to our environment); a timeout or a missing binary is rc 124/127, never raised."""
    try:
        done = subprocess.run(
            args,
            env={**os.environ, **env} if env else None,
            input=input.encode() if isinstance(input, str) else input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Result(124, "", f"timed out after {timeout:.0f}s: {' '.join(args[:4])}")
    except FileNotFoundError:
        return Result(127, "", f"not found: {args[0]}")
    return Result(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))


def docker(*args: str, timeout: float = 120, input: str | bytes | None = None) -> Result:
    """`docker ARGS`."""
    return run(["docker", *args], timeout=timeout, input=input)


def require_engine() -> None:
    """Raise LabError with how to get an engine when none answers, or the image is missing."""
    if shutil.which("docker") is None or not docker("info", "--format", "{{.ServerVersion}}", timeout=20).ok:
        raise LabError(ENGINE_HINT)
    if not docker("image", "inspect", IMAGE, timeout=20).ok:
        raise LabError(f"image {IMAGE} is missing: run `sudo bash docker/engine.sh` to build it")


def compose(compose_file: Path, project: str, *args: str, timeout: float = 300) -> Result:
    """`docker-compose -f FILE -p PROJECT ARGS` (Debian's v1), else `docker compose`.

    docker-compose v1 gives up on one engine request after COMPOSE_HTTP_TIMEOUT (60 s by
    default), which a loaded engine stopping 19 containers exceeds: it may take as long as
    `timeout`, our own deadline for the whole command.
    """
    base = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
    env = {"COMPOSE_HTTP_TIMEOUT": str(int(timeout))}
    return run([*base, "-f", str(compose_file), "-p", project, *args], timeout=timeout, env=env)


def containers(project: str, all_states: bool = True) -> list[str]:
    """Names of the containers of a compose project."""
    args = ["ps", "--format", "{{.Names}}", "--filter", f"label=com.docker.compose.project={project}"]
    result = docker(*args, *(["-a"] if all_states else []), timeout=30)
    return sorted(line for line in result.stdout.split() if line) if result.ok else []


def remove_project(project: str, *, keep_volumes: bool = False) -> list[str]:
    """Force-remove every container, network and volume labelled with a compose project.

    Used when a lab's containers outlived their dockerd (a reboot, a killed session) and
    no compose file is at hand, or compose gave up; returns what it removed.
    """
    removed = []
    label = f"label=com.docker.compose.project={project}"
    kinds = [("container", ["ps", "-aq"]), ("network", ["network", "ls", "-q"])]
    if not keep_volumes:
        kinds.append(("volume", ["volume", "ls", "-q"]))
    for kind, listing in kinds:
        ids = docker(*listing, "--filter", label, timeout=30).stdout.split()
        if ids:
            rm = ["rm", "-f", *ids] if kind == "container" else [kind, "rm", *ids]
            if docker(*rm, timeout=120).ok:
                removed += [f"{kind} {i[:12]}" for i in ids]
    return removed
