"""How each role's service is started, checked and stopped inside a lab container.

`lab up`, the drills and the tests all go through these functions, so a service is
started the same way everywhere.
"""

from __future__ import annotations

import json
import re

from toolkit.lab.host import LabHost
from toolkit.topology.model import Host
from toolkit.wsrep import SYNCED, NodeState

KEYSTONE_ENV = {"OS_KEYSTONE_CONFIG_DIR": "/etc/keystone"}
KEYSTONE_MANAGE = "/opt/keystone/bin/keystone-manage"


def _wsrep(h: LabHost) -> dict[str, str]:
    result = h.sql("SHOW GLOBAL STATUS LIKE 'wsrep%'", timeout=10)
    if not result.ok:
        return {}
    pairs = (line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
    return {k.lower(): v for k, v in pairs}


def galera_status(h: LabHost) -> dict[str, str]:
    """wsrep status of the node through its local socket ({} when it does not answer)."""
    return _wsrep(h)


def is_synced(h: LabHost) -> bool:
    """Primary, Synced and ready."""
    s = NodeState.from_rows(_wsrep(h))
    return s.primary and s.local_state == SYNCED and bool(s.ready)


def start_galera(h: LabHost, *, bootstrap: bool = False, position: str | None = None) -> None:
    """Start mariadbd with the rendered config (`--wsrep-new-cluster` for the first node)."""
    # As mysql, like a real deployment: rsync SST refuses to run as root.
    args = ["mariadbd", "--user=mysql"]
    if bootstrap:
        args.append("--wsrep-new-cluster")
    if position:
        args.append(f"--wsrep-start-position={position}")
    h.run("mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld")
    h.start("mariadb", " ".join(args))


def recover_position(h: LabHost) -> str | None:
    """`uuid:seqno` recovered from InnoDB after a crash (so the restart can use IST, not SST)."""
    out = h.run(
        "mariadbd --user=mysql --wsrep-recover --log-error=/tmp/wsrep-recover.log >/dev/null 2>&1; "
        "grep 'Recovered position' /tmp/wsrep-recover.log | tail -n 1",
        timeout=120,
    ).stdout
    match = re.search(r"Recovered position:?\s*([0-9a-f-]{36}:-?\d+)", out)
    return match.group(1) if match else None


def stop_galera(h: LabHost, *, kill: bool = False) -> None:
    """Stop mariadbd gracefully (TERM) or crash it (KILL)."""
    h.stop("mariadb", "KILL" if kill else "TERM", wait=60)


def start_health(h: LabHost, host: Host) -> None:
    """The Galera-aware health endpoint HAProxy checks."""
    h.start(
        "kgt-health",
        f"kgt health serve --bind {host.address} --port {host.settings.galera.health_port} "
        "--defaults-file /etc/kgt/health.cnf --timeout 0.8",
    )


def start_garbd(h: LabHost) -> None:
    """The Galera arbitrator, from the rendered /etc/default/garb."""
    h.start(
        "garbd",
        'sh -c \'. /etc/default/garb; nodes=$(echo $GALERA_NODES | tr " " ","); '
        'exec garbd -a "gcomm://$nodes" -g "$GALERA_GROUP" -o "$GALERA_OPTIONS"\'',
    )


def start_haproxy(h: LabHost) -> None:
    """HAProxy in the foreground with the rendered config."""
    h.run("mkdir -p /run/haproxy")
    h.start("haproxy", "haproxy -db -f /etc/haproxy/haproxy.cfg")


def start_keepalived(h: LabHost, stale_vips: list[str] | None = None) -> None:
    """keepalived in the foreground, with pid files of its own.

    A keepalived killed with -9 leaves its VIPs on the interface; `stale_vips` are
    dropped before starting so the host does not answer for an address another proxy holds.
    """
    drop_vips(h, stale_vips or [])
    h.start(
        "keepalived",
        "keepalived -n -l -D -f /etc/keepalived/keepalived.conf "
        "-p /run/kgt/keepalived-main.pid -r /run/kgt/keepalived-vrrp.pid",
    )


def drop_vips(h: LabHost, vips: list[str], interface: str = "eth0") -> None:
    """Remove VIPs left on a dead proxy's interface."""
    for vip in vips:
        h.run(f"ip addr del {vip}/32 dev {interface} 2>/dev/null || true")


def held_vips(h: LabHost) -> list[str]:
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


def start_memcached(h: LabHost) -> None:
    """memcached with the options of the rendered /etc/memcached.conf."""
    h.start(
        "memcached", 'sh -c \'exec memcached -u root $(grep "^-" /etc/memcached.conf | grep -v "^-u" | tr "\\n" " ")\''
    )


def start_keystone(h: LabHost, host: Host) -> None:
    """Keystone's WSGI application under gunicorn (argv cleared by /docker/keystone_wsgi.py)."""
    ks = host.settings.keystone
    h.start(
        "keystone",
        f"/opt/keystone/bin/gunicorn --chdir /docker -b {host.address}:{ks.port} "
        f"-w {ks.workers} --timeout 120 keystone_wsgi:application",
        env=KEYSTONE_ENV,
    )


def stop_keystone(h: LabHost) -> None:
    """Stop Keystone's WSGI server."""
    h.stop("keystone")


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
    command = f"{prefix}OS_KEYSTONE_CONFIG_DIR=/etc/keystone {KEYSTONE_MANAGE} {args}"
    result = h.run(command, timeout=timeout, input=stdin)
    if not result.ok:
        raise RuntimeError(f"keystone-manage {args.split()[0]} failed: {(result.stderr or result.stdout)[-800:]}")


def start_named(h: LabHost) -> None:
    """BIND serving the rendered zone."""
    h.run("mkdir -p /var/cache/bind /run/named")
    h.start("named", "named -f -u root -c /etc/bind/named.conf")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether `url` answers 200 within `timeout` (any error is False)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False
