"""The lab's services: `toolkit.services` driven inside Docker containers (`docker exec`).

`LabServices` is the lab's `ServiceManager`: lab boot, the drill backend and the tests
start, stop, kill, reload and wait on every service through it, so a service is driven
the same way everywhere, as the table in `toolkit.services` describes it. The rest are
the lab's Galera, VIP and Keystone helpers that are not a service's life cycle.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

from toolkit import services
from toolkit.errors import KgtError, LabError
from toolkit.lab.host import LabHost, PidProcesses
from toolkit.services import ServiceManager
from toolkit.topology.model import Host, Topology

KEYSTONE_MANAGE = "/opt/keystone/bin/keystone-manage"


class LabServices(ServiceManager):
    """The services of one lab container, as pid files and logs under /run/kgt and /var/log/kgt."""

    error: ClassVar[type[KgtError]] = LabError
    shell: PidProcesses

    def __init__(self, topology: Topology, host: Host, shell: PidProcesses | None = None) -> None:
        super().__init__(topology, host, shell or LabHost(host.name))

    def start(self, name: str, *args: str) -> None:
        """Its preparation, then its command line in the background (`LabHost.start`)."""
        spec = self.spec(name)
        if spec.prepare:
            self.shell.run(spec.prepare)
        self.shell.start(name, self.command_line(name, *args), env=spec.env or None)

    def stop(self, name: str, *, kill: bool = False) -> None:
        """TERM (or KILL, its children at the same moment), then wait until its process is gone."""
        spec = self.spec(name)
        if kill and spec.children:
            self.shell.run(f"kill -KILL $(cat {' '.join(spec.children)} 2>/dev/null) 2>/dev/null; true", timeout=15)
        self.shell.stop(name, "KILL" if kill else "TERM", wait=spec.stop_wait)

    def running(self, name: str) -> bool:
        """Whether its pid file names a live process."""
        return self.shell.running(name)

    def signal(self, name: str, signal: str) -> None:
        """`kill -SIGNAL` its process."""
        self.shell.signal(name, signal)

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines of /var/log/kgt/NAME.log."""
        return self.shell.log_tail(name, lines)

    def log_since_start(self, name: str) -> str:
        """Its log since its last start (the lines after the last `== start` mark)."""
        script = f'awk \'/^== start /{{buf=""}} {{buf=buf $0 "\\n"}} END{{printf "%s", buf}}\' /var/log/kgt/{name}.log'
        return self.shell.run(script, timeout=30).stdout


# -- Galera --------------------------------------------------------------------------------


def recover_position(h: PidProcesses) -> str | None:
    """`uuid:seqno` recovered from InnoDB after a crash (so the restart can use IST, not SST)."""
    out = h.run(
        "mariadbd --user=mysql --wsrep-recover --log-error=/tmp/wsrep-recover.log >/dev/null 2>&1; "
        "grep 'Recovered position' /tmp/wsrep-recover.log | tail -n 1",
        timeout=120,
    ).stdout
    match = re.search(r"Recovered position:?\s*([0-9a-f-]{36}:-?\d+)", out)
    return match.group(1) if match else None


# -- VIPs ----------------------------------------------------------------------------------


def held_vips(h: PidProcesses) -> list[str]:
    """IPv4 addresses on the container's interfaces that are /32 (VIPs)."""
    result = h.run(ADDRESSES, timeout=15)
    return vips_in(result.stdout) if result.ok else []


ADDRESSES = "ip -j -4 addr show"  # one line of JSON


def vips_in(addresses: str) -> list[str]:
    """The /32 IPv4 addresses (VIPs) in the output of `ADDRESSES`."""
    try:
        links = json.loads(addresses or "[]")
    except ValueError:
        return []
    held = []
    for link in links:
        for info in link.get("addr_info", []):
            if info.get("prefixlen") == 32 and info.get("family") == "inet":
                held.append(str(info["local"]))
    return sorted(held)


def keystone_manage(h: LabHost, args: str, timeout: float = 300, secret_env: tuple[str, str] | None = None) -> None:
    """Run keystone-manage with the rendered config; raise on failure with its output.

    `secret_env` (name, value) reaches keystone-manage as an environment variable read
    from stdin, so the value is never on a command line (where `ps` shows it, and where a
    value starting with "-" reads as an option).
    """
    prefix, stdin = "", None
    if secret_env is not None:
        name, stdin = secret_env[0], secret_env[1] + "\n"
        prefix = f"IFS= read -r {name}; export {name}; "
    config = " ".join(f"{k}={v}" for k, v in services.KEYSTONE_ENV.items())
    command = f"{prefix}{config} {KEYSTONE_MANAGE} {args}"
    result = h.run(command, timeout=timeout, input=stdin)
    if not result.ok:
        raise RuntimeError(f"keystone-manage {args.split()[0]} failed: {(result.stderr or result.stdout)[-800:]}")
