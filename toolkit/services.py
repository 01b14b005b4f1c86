"""One way to drive a host's services: a table of what each service is, and a manager that runs it.

`SERVICES` says, per service: the role it serves, how to start it in the foreground from
the rendered config, what to prepare first, how to tell it is healthy and how long to wait
for that (on a cold boot of the site, and when it is brought back after a fault), how long
a stop may take, what a crash of it leaves behind and how it reloads. A `ServiceManager`
drives the services of one host through that table: start, stop, kill, restart, reload,
running, wait until healthy, log tail.

The Docker lab implements it with `docker exec` (`toolkit.lab.services.LabServices`); lab
boot and the drill backend both go through it. A host agent implements the same abstract
methods with systemd (`systemctl start|stop|reload UNIT`, `systemctl kill -s KILL UNIT`,
`journalctl -u UNIT -n N`) and keeps the table's health checks and timeouts.

Commands and health targets are templates filled from the host and the site (`fields`):
`{address}`, `{name}`, `{region}`, `{settings.haproxy.stats_port}`, `{domain}`,
`{first_region}`, `{scheme}` (https on a TLS site), `{keystone_tls}` (gunicorn's certificate
options, empty without TLS); a literal brace is written `{{`. HTTPS health checks verify
against the site CA (`Topology.client_ca`). Stdlib only (the topology is only a
type here), so an agent on a host imports it without the lab.
"""

from __future__ import annotations

import abc
import shlex
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from toolkit import tlsclient, tlsfiles
from toolkit.errors import DeadlineExceeded, KgtError
from toolkit.retry import poll
from toolkit.wsrep import SYNCED, NodeState

if TYPE_CHECKING:
    from toolkit.topology.model import Host, Topology


class CommandResult(Protocol):
    """What a command on a host returned."""

    @property
    def ok(self) -> bool:
        """Whether it exited 0."""

    @property
    def stdout(self) -> str:
        """Its standard output."""

    @property
    def stderr(self) -> str:
        """Its standard error."""


class Shell(Protocol):
    """Runs shell commands on one host (`docker exec` in the lab, a local `sh` on the host itself)."""

    @property
    def name(self) -> str:
        """The host's name."""

    def run(self, command: str, *, timeout: float = 60, input: str | bytes | None = None) -> CommandResult:
        """Run `command` with `sh -c`; a timeout is a failed result, never an exception."""


@dataclass(frozen=True)
class Gate:
    """How long to wait for a service to be healthy, and how often to ask."""

    timeout: float
    interval: float = 0.3
    max_interval: float = 1.0


@dataclass(frozen=True)
class Health:
    """How to tell a service is healthy: `what` names the condition in messages, `ok` asks once."""

    what: Callable[[ServiceManager], str]
    ok: Callable[[ServiceManager], bool]


@dataclass(frozen=True)
class Service:
    """One service of the table (see the module docstring for the template fields)."""

    name: str  # its pid file, log and (on a real host) systemd unit are named after it
    role: str  # the topology role whose hosts run it
    command: str  # the foreground command line, from the rendered config
    prepare: str | None = None  # run before each start (runtime directories)
    env: Mapping[str, str] = field(default_factory=dict)
    health: Health | None = None  # None: starting it is all there is to wait for
    boot: Gate | None = None  # the wait after starting it on a cold boot of the site
    back: Gate | None = None  # the wait after bringing it back after a fault
    stop_wait: float = 20  # how long a stop may take before the process is killed
    children: tuple[str, ...] = ()  # pid files of its own processes that a kill takes down with it
    leftovers: tuple[str, ...] = ()  # per-VIP commands clearing what a crash of it leaves behind ({vip})
    reload_signal: str | None = None  # re-reads its config on this signal; None: a reload is a restart


# -- health checks -------------------------------------------------------------------------


def http_ok(url: str, timeout: float = 2.0, ca: Path | None = None) -> bool:
    """Whether `url` answers 200 within `timeout` (any error is False); https verified against `ca`."""
    context = tlsclient.context(ca) if ca is not None and url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def sql_command(statement: str) -> str:
    """The command that runs SQL as root through the local socket (`mariadb -N -B`)."""
    return f"mariadb -N -B -e {shlex.quote(statement)}"


def sql(shell: Shell, statement: str, timeout: float = 30) -> CommandResult:
    """Run SQL as root through the local socket."""
    return shell.run(sql_command(statement), timeout=timeout)


def wsrep_status(shell: Shell) -> dict[str, str]:
    """The node's wsrep status rows, names in lower case ({} when it does not answer)."""
    result = sql(shell, "SHOW GLOBAL STATUS LIKE 'wsrep%'", timeout=10)
    if not result.ok:
        return {}
    pairs = (line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
    return {k.lower(): v for k, v in pairs}


def synced(shell: Shell) -> bool:
    """Primary, Synced and ready."""
    s = NodeState.from_rows(wsrep_status(shell))
    return s.primary and s.local_state == SYNCED and bool(s.ready)


def http(url: str, timeout: float = 2.0) -> Health:
    """Healthy when `url` (a template) answers 200, asked from where the manager runs."""
    return Health(lambda m: f"{m.fill(url)} 200", lambda m: http_ok(m.fill(url), timeout, m.topology.client_ca))


def succeeds(what: str, command: str) -> Health:
    """Healthy when `command` (a template) exits 0 on the host."""
    return Health(lambda m: m.fill(what), lambda m: m.shell.run(m.fill(command)).ok)


def answers(what: str, command: str) -> Health:
    """Healthy when `command` (a template) prints something on the host."""
    return Health(lambda m: m.fill(what), lambda m: bool(m.shell.run(m.fill(command)).stdout.strip()))


SYNCED_HEALTH = Health(lambda m: "Synced", lambda m: synced(m.shell))


def process_runs(name: str) -> Health:
    """Healthy while its process runs."""
    return Health(lambda m: f"{name} running", lambda m: m.running(name))


# -- the table -----------------------------------------------------------------------------

BOOTSTRAP = Gate(120)  # the first Galera node of a new cluster, Primary and Synced
REJOIN = Gate(240)  # a Galera node joining or rejoining, to Synced (IST, or a whole SST)
KEYSTONE_ENV = {"OS_KEYSTONE_CONFIG_DIR": "/etc/keystone"}

SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "mariadb",
            "galera",
            # As mysql, like a real deployment: rsync SST refuses to run as root.
            "mariadbd --user=mysql",
            prepare="mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld",
            health=SYNCED_HEALTH,
            boot=REJOIN,
            back=REJOIN,
            stop_wait=60,
        ),
        Service(
            "kgt-health",  # the Galera-aware health endpoint HAProxy checks
            "galera",
            "kgt health serve --bind {address} --port {settings.galera.health_port} "
            "--defaults-file /etc/kgt/health.cnf --timeout 0.8",
            health=http("http://{address}:{settings.galera.health_port}/write"),
            boot=Gate(60),
        ),
        Service(
            "garbd",  # the arbitrator, from the rendered /etc/default/garb
            "garbd",
            'sh -c \'. /etc/default/garb; nodes=$(echo $GALERA_NODES | tr " " ","); '
            'exec garbd -a "gcomm://$nodes" -g "$GALERA_GROUP" -o "$GALERA_OPTIONS"\'',
        ),
        Service(
            "haproxy",
            "haproxy",
            "haproxy -db -f /etc/haproxy/haproxy.cfg",
            prepare="mkdir -p /run/haproxy",
            health=http("http://{address}:{settings.haproxy.stats_port}/healthz"),
            boot=Gate(60),
            back=Gate(30, interval=0.2),
        ),
        Service(
            "keepalived",  # with pid files of its own; on boot the site waits for its VIPs instead
            "keepalived",
            "keepalived -n -l -D -f /etc/keepalived/keepalived.conf "
            "-p /run/kgt/keepalived-main.pid -r /run/kgt/keepalived-vrrp.pid",
            health=process_runs("keepalived"),
            back=Gate(15, interval=0.2),
            # Its VRRP child, when only the parent is killed, exits cleanly and hands the VIPs
            # over at once: a crash kills both. Killed with -9 it leaves its VIPs on the
            # interface, so the host would answer for addresses another proxy holds.
            children=("/run/kgt/keepalived-vrrp.pid", "/run/kgt/keepalived-main.pid"),
            leftovers=("ip addr del {vip}/32 dev eth0 2>/dev/null || true",),
            reload_signal="HUP",
        ),
        Service(
            "memcached",  # with the options of the rendered /etc/memcached.conf
            "memcached",
            'sh -c \'exec memcached -u root $(grep "^-" /etc/memcached.conf | grep -v "^-u" | tr "\\n" " ")\'',
            health=succeeds("memcached listening", "nc -z -w 1 $(hostname -i) {settings.memcached.port}"),
            boot=Gate(30),
        ),
        Service(
            # Its WSGI application under gunicorn (argv cleared by /docker/keystone_wsgi.py). A sync
            # worker serves one connection and reads without a timeout: /docker/keystone_gunicorn.py
            # gives every TLS connection a 5 s deadline, so a peer a WAN cut took away mid-handshake
            # (its reset lost) cannot hold the region's workers; --timeout 30 recycles any worker
            # stuck anyway (one Keystone request takes well under a second).
            "keystone",
            "keystone",
            "/opt/keystone/bin/gunicorn -c /docker/keystone_gunicorn.py --chdir /docker "
            "-b {address}:{settings.keystone.port} "
            "-w {settings.keystone.workers} --timeout 30{keystone_tls} keystone_wsgi:application",
            env=KEYSTONE_ENV,
            health=http("{scheme}://{address}:{settings.keystone.port}/v3", timeout=5),
            boot=Gate(120),
            back=Gate(120, interval=0.2),
            reload_signal="HUP",
        ),
        Service(
            # The site's etcd member, from the rendered config file (which sets everything: etcd then
            # ignores its ETCD_* environment), as the etcd user that owns its key and data. setpriv
            # execs etcd itself (runuser would stay its parent, and SIGKILL it 2 s after a TERM).
            # /health is 200 only with a leader and a committed read: a member of a new cluster
            # is healthy once a majority of the members runs.
            "etcd",
            "etcd",
            "setpriv --reuid=etcd --regid=etcd --init-groups -- etcd --config-file /etc/etcd/kgt.conf.yml",
            prepare="install -d -o etcd -g etcd -m 700 /var/lib/etcd",
            health=http("{scheme}://{address}:{settings.etcd.client_port}/health"),
            boot=Gate(60),
            back=Gate(60),
        ),
        Service(
            "named",  # BIND serving the rendered zone
            "dns",
            "named -f -u root -c /etc/bind/named.conf",
            prepare="mkdir -p /var/cache/bind /run/named",
            health=answers(
                "named answers {first_region}.{domain}", "dig +short +time=1 @{address} {first_region}.{domain} A"
            ),
            boot=Gate(60),
            reload_signal="HUP",
        ),
    )
}

ROLE_SERVICES: dict[str, tuple[str, ...]] = {}
for _service in SERVICES.values():
    ROLE_SERVICES[_service.role] = (*ROLE_SERVICES.get(_service.role, ()), _service.name)


def galera_args(*, bootstrap: bool = False, position: str | None = None) -> tuple[str, ...]:
    """mariadbd's extra arguments: a new cluster (the first node), or the position to resume from."""
    args = ["--wsrep-new-cluster"] if bootstrap else []
    if position:
        args.append(f"--wsrep-start-position={position}")
    return tuple(args)


def host_fields(host: Host) -> dict[str, object]:
    """The template fields a host gives (its name, address, region and settings)."""
    return {"name": host.name, "address": host.address, "region": host.region, "settings": host.settings}


# -- the manager ---------------------------------------------------------------------------


class ServiceManager(abc.ABC):
    """Drives the services of one host of a site, each as `SERVICES` describes it."""

    error: ClassVar[type[KgtError]] = KgtError  # what a service that fails a step raises
    topology: Topology
    host: Host
    shell: Shell

    def __init__(self, topology: Topology, host: Host, shell: Shell) -> None:
        self.topology = topology
        self.host = host
        self.shell = shell

    # -- what an implementation provides -----------------------------------------------------

    @abc.abstractmethod
    def start(self, name: str, *args: str) -> None:
        """Start the service (with extra daemon arguments); no-op while it runs."""

    @abc.abstractmethod
    def stop(self, name: str, *, kill: bool = False) -> None:
        """Stop it gracefully (TERM), or crash it (`kill`: KILL, children included); bounded."""

    @abc.abstractmethod
    def running(self, name: str) -> bool:
        """Whether its process is alive."""

    @abc.abstractmethod
    def signal(self, name: str, signal: str) -> None:
        """Send its main process `signal`."""

    @abc.abstractmethod
    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines of its log."""

    # -- built on those ----------------------------------------------------------------------

    def spec(self, name: str) -> Service:
        """The table's entry for `name`."""
        if name not in SERVICES:
            raise self.error(f"unknown service {name!r} (kgt drives {', '.join(SERVICES)})")
        return SERVICES[name]

    def fill(self, template: str, **extra: object) -> str:
        """A command or target template filled from this host and its site."""
        tls = tlsfiles.BY_ROLE["keystone"]
        gunicorn_tls = f" --certfile {tls.cert} --keyfile {tls.key} --ciphers {tlsfiles.CIPHERS}"
        fields = {
            **host_fields(self.host),
            "domain": self.topology.domain,
            "first_region": self.topology.regions[0].name,
            "scheme": tlsfiles.scheme(self.topology.tls_on),
            "keystone_tls": gunicorn_tls if self.topology.tls_on else "",
        }
        return template.format_map({**fields, **extra})

    def command_line(self, name: str, *args: str) -> str:
        """The service's foreground command line on this host."""
        return " ".join([self.fill(self.spec(name).command), *args])

    def kill(self, name: str) -> None:
        """kill -9 the service (and its children)."""
        self.stop(name, kill=True)

    def restart(self, name: str, *args: str) -> None:
        """Stop it gracefully, then start it."""
        self.stop(name)
        self.start(name, *args)

    def reload(self, name: str) -> None:
        """Make it re-read its config: its reload signal, or a restart where it has none."""
        sig = self.spec(name).reload_signal
        if sig is None:
            self.restart(name)
        else:
            self.signal(name, sig)

    def healthy(self, name: str) -> bool:
        """Whether it passes its health check now (a service without one: whether it runs)."""
        health = self.spec(name).health
        return health.ok(self) if health is not None else self.running(name)

    def wait_until(self, check: Callable[[], object], *, what: str, service: str, gate: Gate) -> None:
        """Wait until `check()` is true; else raise `error` with the tail of `service`'s log."""
        try:
            poll(check, timeout=gate.timeout, what=what, interval=gate.interval, max_interval=gate.max_interval)
        except DeadlineExceeded as exc:
            tail = self.log_tail(service).rstrip()
            raise self.error(
                f"host {self.host.name}: {what} not ready after {gate.timeout:.0f}s\n"
                f"--- last lines of {service} log on {self.host.name}:\n{tail or '(empty)'}"
            ) from exc

    def wait_healthy(self, name: str, gate: Gate) -> None:
        """Wait until it passes its health check (see `wait_until`)."""
        health = self.spec(name).health
        what = health.what(self) if health is not None else f"{name} running"
        self.wait_until(lambda: self.healthy(name), what=what, service=name, gate=gate)

    def bring_back(self, name: str) -> None:
        """Start it again after a fault: clear what a crash left, start, wait its `back` gate."""
        spec = self.spec(name)
        for vip in self.topology.region(self.host.region).vips if spec.leftovers else ():
            for command in spec.leftovers:
                self.shell.run(self.fill(command, vip=vip.address))
        self.start(name)
        if spec.back is not None:
            self.wait_healthy(name, spec.back)
