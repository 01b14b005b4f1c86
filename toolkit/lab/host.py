"""A handle on one lab container: run commands and start/stop/signal its processes by name.

Services run in the foreground under `sh`, with their pid in /run/kgt/NAME.pid and their
output in /var/log/kgt/NAME.log, so a failed step can show the tail of the right log.
These are the container-side primitives of `toolkit.lab.services.LabServices`, which
drives every service the way `toolkit.services` describes it: from outside (`LabHost`,
`docker exec`) or from inside the container (`LocalHost`: the host's own agent).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from toolkit import services
from toolkit.lab.docker import Result, docker, run


def alive(service: str) -> str:
    """The shell test that succeeds while `service`'s process runs."""
    return f"[ -f /run/kgt/{service}.pid ] && kill -0 $(cat /run/kgt/{service}.pid) 2>/dev/null"


class PidProcesses:
    """Services as pid files and logs under /run/kgt and /var/log/kgt, on whatever `run` reaches."""

    name: str

    def run(self, command: str, *, timeout: float = 60, input: str | bytes | None = None) -> Result:
        """Run a shell command on the host (a container from outside, or the host itself)."""
        raise NotImplementedError

    def start(self, service: str, command: str, env: Mapping[str, str] | None = None) -> Result:
        """Start `command` as service `service` in the background (no-op if it runs already)."""
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
        script = (
            f"mkdir -p /run/kgt /var/log/kgt; "
            f"if {alive(service)}; then exit 0; fi; "
            f'{exports}echo "== start $(date -u +%FT%TZ)" >> /var/log/kgt/{service}.log; '
            f"nohup sh -c {shlex.quote('echo $$ > /run/kgt/' + service + '.pid; exec ' + command)} "
            f">> /var/log/kgt/{service}.log 2>&1 < /dev/null &"
        )
        return self.run(script, timeout=30)

    def stop(self, service: str, signal: str = "TERM", wait: float = 20) -> Result:
        """Signal a service and wait (bounded) until its process is gone."""
        pidfile = f"/run/kgt/{service}.pid"
        script = (
            f"[ -f {pidfile} ] || exit 0; pid=$(cat {pidfile}); kill -{signal} $pid 2>/dev/null; "
            f"i=0; while kill -0 $pid 2>/dev/null && [ $i -lt {int(wait * 10)} ]; do sleep 0.1; i=$((i+1)); done; "
            f"if kill -0 $pid 2>/dev/null; then kill -KILL $pid; fi; rm -f {pidfile}"
        )
        return self.run(script, timeout=wait + 10)

    def running(self, service: str) -> bool:
        """Whether the service's process is alive."""
        return self.run(alive(service), timeout=15).ok

    def signal(self, service: str, signal: str) -> Result:
        """Send the service's process `signal` (nothing when it does not run)."""
        return self.run(f"{alive(service)} && kill -{signal} $(cat /run/kgt/{service}.pid); true", timeout=15)

    def log_tail(self, service: str, lines: int = 15) -> str:
        """The last lines of a service's log."""
        return self.run(f"tail -n {lines} /var/log/kgt/{service}.log 2>/dev/null", timeout=15).stdout

    def sql(self, statement: str, timeout: float = 30) -> Result:
        """Run SQL as root through the local socket (`mariadb -N -B`)."""
        return self.run(services.sql_command(statement), timeout=timeout)


@dataclass(frozen=True)
class LabHost(PidProcesses):
    """One container of the lab, addressed by its name (the topology's host name), driven from outside."""

    name: str

    def run(self, command: str, *, timeout: float = 60, input: str | bytes | None = None) -> Result:
        """Run a shell command inside the container."""
        args = ["exec", *(["-i"] if input is not None else []), self.name, "sh", "-c", command]
        return docker(*args, timeout=timeout, input=input)


@dataclass(frozen=True)
class LocalHost(PidProcesses):
    """The lab container the caller runs in (its agent), with the same pid files and logs as `LabHost`."""

    name: str

    def run(self, command: str, *, timeout: float = 60, input: str | bytes | None = None) -> Result:
        """Run a shell command here."""
        return run(["sh", "-c", command], timeout=timeout, input=input)
