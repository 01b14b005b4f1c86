"""A fake Docker lab for unit tests: containers that answer `docker exec` from a little state.

`FakeLab.install(monkeypatch)` puts it behind `toolkit.lab.docker.docker` (every `docker`
command line of the lab), `urllib.request.urlopen` (the HTTP readiness checks, made from
the controller) and `toolkit.lab.network.route_regions`, and records, in order, every
command a container is asked to run, every other `docker` call, every URL asked and every
wait (its timeout and pace). Services "run" from the moment their start script is seen
until a kill script for their pid file is, so start/stop/running/health all follow.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from toolkit.lab.docker import Result
from toolkit.topology.model import Topology

Record = list[Any]

SYNCED_ROWS = (
    "wsrep_cluster_status\tPrimary\nwsrep_local_state\t4\nwsrep_local_state_comment\tSynced\n"
    "wsrep_ready\tON\nwsrep_connected\tON\nwsrep_cluster_size\t{size}\n"
)
POSITION = "6e0a3b5c-0000-4000-8000-00000000abcd:42"


class FakeClock:
    """`time` for `toolkit.retry`: sleeping moves the clock on at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


@dataclass
class FakeLab:
    """The containers of `topology`, all up and idle, with nothing running."""

    topology: Topology
    root: Path | None = None  # a path to show as <lab> in the records (it differs per run)
    records: list[Record] = field(default_factory=list)
    running: set[tuple[str, str]] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)
    never_healthy: set[str] = field(default_factory=set)  # services whose health never answers
    log: str = "2026-01-01 [Note] WSREP: rsync IST completed on joiner\n"

    # -- installing ------------------------------------------------------------------------

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeLab:
        """Stand in for Docker, HTTP and the WAN routes; record waits."""
        import toolkit.lab.docker
        import toolkit.lab.host
        import toolkit.lab.network

        monkeypatch.setattr(toolkit.lab.docker, "docker", self.docker)
        if hasattr(toolkit.lab.host, "docker"):
            monkeypatch.setattr(toolkit.lab.host, "docker", self.docker)
        monkeypatch.setattr("urllib.request.urlopen", self.urlopen)
        monkeypatch.setattr(toolkit.lab.network, "route_regions", lambda t: self.records.append(["route_regions"]))
        for name in ("toolkit.services", "toolkit.lab.boot", "toolkit.drills.backend", "toolkit.lab.services"):
            module = sys.modules.get(name)
            if module is not None and hasattr(module, "poll"):
                monkeypatch.setattr(module, "poll", self._recording(module.poll))
        return self

    def fake_time(self, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
        """Make waits end at once (a wait that never succeeds reaches its deadline without sleeping)."""
        import toolkit.retry

        clock = FakeClock()
        monkeypatch.setattr(toolkit.retry, "time", clock)
        return clock

    def _recording(self, poll: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(check: Callable[[], Any], **kwargs: Any) -> Any:
            self.records.append(["wait", kwargs["timeout"], kwargs.get("interval"), kwargs.get("max_interval")])
            return poll(check, **kwargs)

        return recorded

    # -- the fakes -------------------------------------------------------------------------

    def shown(self, value: object) -> object:
        if isinstance(value, str) and self.root is not None:
            return value.replace(str(self.root), "<lab>")
        return value

    def docker(self, *args: str, timeout: float = 120, input: str | bytes | None = None) -> Result:
        """`docker ARGS`: exec runs against the fake container, start/stop change its state."""
        if args[0] == "exec":
            name, command = args[-4], args[-1]
            self.records.append(["exec", name, command, timeout, input])
            return self.sh(name, command)
        self.records.append(["docker", *(str(self.shown(a)) for a in args), timeout])
        if args[0] == "stop":
            for name in args[3:]:
                self.stopped.add(name)
                self.running -= {(h, s) for h, s in self.running if h == name}
        elif args[0] == "start":
            self.stopped -= set(args[1:])
        return Result(0, "", "")

    def urlopen(self, url: str, timeout: float = 0, context: Any = None) -> Any:
        """HTTP from the controller: 200 when the service behind the port runs."""
        self.records.append(["http", url, timeout])
        service = {"/healthz": "haproxy", "/write": "kgt-health", "/v3": "keystone"}[url[url.rindex("/") :]]
        if service in self.never_healthy or not any(s == service for _, s in self.running):
            raise OSError("connection refused")
        return _Response()

    def sh(self, name: str, command: str) -> Result:
        """What the container answers to one `sh -c COMMAND`."""
        if name in self.stopped:
            return Result(1, "", f"Error response from daemon: container {name} is not running")
        started = re.search(r"nohup sh -c .*?/run/kgt/([\w-]+)\.pid", command)
        if started:
            self.running.add((name, started.group(1)))
            return Result(0, "", "")
        killed = re.search(r"\[ -f /run/kgt/([\w-]+)\.pid \] \|\| exit 0; pid=", command)
        if killed:
            self.running.discard((name, killed.group(1)))
            return Result(0, "", "")
        alive = re.fullmatch(r"\[ -f /run/kgt/([\w-]+)\.pid \] && kill -0 .*", command)
        if alive:
            return Result(0 if (name, alive.group(1)) in self.running else 1, "", "")
        return self._answer(name, command)

    def _answer(self, name: str, command: str) -> Result:
        up = {s for h, s in self.running if h == name} - self.never_healthy
        if "SHOW GLOBAL STATUS LIKE" in command:
            if "mariadb" not in up:
                return Result(1, "", "ERROR 2002 (HY000): Can't connect to local server")
            size = len(self.topology.galera_nodes) + len(self.topology.with_role("garbd"))
            return Result(0, SYNCED_ROWS.format(size=size), "")
        if command.startswith("ip -j -4 addr show"):
            vips = [{"local": str(v.address), "prefixlen": 32, "family": "inet"} for v in self.topology.vips]
            return Result(0, json.dumps([{"ifname": "eth0", "addr_info": vips}]), "")
        if command.startswith("nc -z"):
            return Result(0 if "memcached" in up else 1, "", "")
        if command.startswith("dig "):
            return Result(0, "10.100.1.21\n" if "named" in up else "", "")
        if "--wsrep-recover" in command:
            return Result(0, f"[Note] WSREP: Recovered position: {POSITION}\n", "")
        if command.startswith("awk "):
            return Result(0, self.log, "")
        if command.startswith("tail -n"):
            logged = re.search(r"/var/log/kgt/([\w-]+)\.log", command)
            return Result(0, f"last words of {logged.group(1) if logged else '?'}\n", "")
        if command.startswith("mariadb -N -B -e 'SELECT @@global.wsrep_dirty_reads'"):
            return Result(0, "0\n", "")
        return Result(0, "", "")

    def commands(self) -> list[str]:
        """The commands run inside containers so far, as `host: command`."""
        return [f"{r[1]}: {r[2]}" for r in self.records if r[0] == "exec"]


class _Response:
    status = 200

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@contextmanager
def recording(lab: FakeLab, into: dict[str, list[Record]], scenario: str) -> Iterator[None]:
    """Collect the records made inside the block under `scenario`."""
    start = len(lab.records)
    yield
    into[scenario] = [[lab.shown(v) for v in r] for r in lab.records[start:]]
