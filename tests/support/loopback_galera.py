"""A real multi-region MariaDB Galera cluster on loopback addresses, for integration tests.

Every region is a /24 inside 127/8 (Linux answers all of 127/8 on `lo`), each Galera node
listens on its own address (127.0.N.11, .12, …), and each is started from the config the
real renderer writes (`toolkit.render`), so the tests exercise the shipped `60-galera.cnf`
and `sql/bootstrap.sql`. No containers, no namespaces: one `mariadbd` process per node.

    with LoopbackCluster(Path(tempfile.mkdtemp())) as cluster:  # boot() on enter, teardown() on exit
        cluster.topology_path, cluster.secrets_path   # for `kgt … TOPOLOGY`
        cluster.isolate("r3")                      # iptables DROP between r3 and the rest
        cluster.blackhole("127.0.9.9")             # connects to it time out
        cluster.heal()                             # delete every rule added
        cluster.stop("r2-db1"); cluster.start("r2-db1")   # SIGTERM (kill=True: SIGKILL); rejoin by IST
        cluster.sql("r1-db1", "SELECT 1"); cluster.status("r3-db1"); cluster.wait_all_synced()

or the pytest fixture (session scope), which skips when not root or MariaDB is missing:

    from tests.support import loopback_galera
    loopback_cluster = loopback_galera.loopback_cluster   # the fixture, under its own name

    def test_x(loopback_cluster): ...

Faults heal on teardown, always: `teardown()` deletes exactly the iptables rules this
object inserted (each tagged with a comment naming it) and stops only the PIDs it
started. Partitions match source *and* destination region subnets, so a client on
127.0.0.1 (the test, `kgt`) still reaches every region, like an operator outside all
regions; Galera binds its outgoing gcomm connections to `gmcast.listen_addr`, so the
cut between nodes is complete.

mariadbd runs as user mysql (rsync SST's daemon, started by a root mariadbd, would drop
to nobody and fail to write the datadir), so the work directory and its parents must be
traversable by mysql: pytest's `tmp_path` (under a 0700 directory) is not; the fixture
uses `tempfile.mkdtemp()` made 0755, or KGT_LOOPBACK_DIR. Teardown deletes the data
directories (≈400 MB for three nodes) but keeps logs and configs; KGT_LOOPBACK_KEEP=1
keeps everything.

Measured on 2 cores: boot (install-db, bootstrap, two rsync SSTs) 11–17 s; with the
rendered stock EVS timeouts an isolated region turns non-Primary ≈6 s after the cut,
and every node is Synced again ≈6 s after `heal()`.

Two harnesses can run side by side with different prefixes (`prefix="127.1"` gives
127.1.1.0/24, …; the fixture reads KGT_LOOPBACK_PREFIX). Logs, data directories and the
rendered configs stay in the work directory for post-mortems.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # pytest is optional: benchmarks use the class without it
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

MARIADBD = "/usr/sbin/mariadbd"
PROVIDER = "/usr/lib/galera/libgalera_smm.so"
MYSQL_USER = "mysql"


class LoopbackError(RuntimeError):
    """The loopback cluster could not be booted or changed as asked."""


class NodeDied(LoopbackError):
    """A node's process exited while the harness waited for it (never retried)."""


def skip_reason() -> str | None:
    """Why the loopback cluster cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the loopback Galera cluster needs root (mariadbd --user=mysql, iptables)"
    import pwd

    try:
        pwd.getpwnam(MYSQL_USER)
    except KeyError:
        return f"no user {MYSQL_USER} (apt-get install mariadb-server creates it)"
    for binary in (MARIADBD, PROVIDER):
        if not Path(binary).exists():
            return f"{binary} is missing (apt-get install mariadb-server galera-4 rsync)"
    for tool in ("mariadb-install-db", "mariadb", "rsync", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt-get install mariadb-server galera-4 rsync iptables)"
    return None


def topology_yaml(name: str, prefix: str, regions: int, per_region: int, rtt: str = "1ms") -> str:
    """A topology with `regions` regions of `per_region` Galera nodes each, and nothing else."""
    lines = [
        "# Loopback Galera cluster written by tests/support/loopback_galera.py.",
        f"name: {name}",
        "domain: kgt.test",
        "secrets: {file: s.yaml, create: true}",
        f"wan: {{rtt: {rtt}}}",
        "defaults:",
        "  cores: 2",
        "  galera: {gcache_size: 64M, innodb_buffer_pool_size: 64M, max_connections: 100, sst_method: rsync}",
        # kgt and the tests connect from the loopback addresses: the accounts' admin and monitoring sources.
        "firewall: {admin_networks: [127.0.0.0/8], monitoring: [127.0.0.0/8]}",
        "regions:",
    ]
    for r in range(1, regions + 1):
        lines += [f"  - name: r{r}", f"    subnet: {prefix}.{r}.0/24", "    hosts:"]
        for n in range(1, per_region + 1):
            lines.append(f"      - {{name: r{r}-db{n}, address: {prefix}.{r}.{10 + n}, roles: [galera]}}")
    return "\n".join(lines) + "\n"


@dataclass
class Node:
    """One mariadbd of the cluster: its files and, while it runs, its process."""

    name: str
    region: str
    address: str
    port: int
    gcomm_port: int
    cnf: Path
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        """The node's data directory."""
        return self.home / "data"

    @property
    def socket(self) -> Path:
        """Its unix socket (root connects through it with unix_socket authentication)."""
        return self.home / "mysqld.sock"

    @property
    def log(self) -> Path:
        """Its error log."""
        return self.home / "error.log"

    @property
    def running(self) -> bool:
        """Whether the process this harness started is still alive."""
        return self.process is not None and self.process.poll() is None


@dataclass
class LoopbackCluster:
    """A Galera cluster of one mariadbd per topology node on 127/8; see the module docstring."""

    workdir: Path
    regions: int = 3
    per_region: int = 1
    prefix: str = "127.0"
    name: str = "kgt-loop"
    boot_timeout: float = 240.0
    nodes: dict[str, Node] = field(default_factory=dict)
    boot_seconds: float | None = None
    keep_data: bool = False  # teardown deletes the data directories (≈400 MB) unless set; logs stay
    _rules: list[list[str]] = field(default_factory=list)
    _isolated: set[str] = field(default_factory=set)

    # --- files -------------------------------------------------------------------------

    @property
    def topology_path(self) -> Path:
        """The topology YAML the cluster was rendered from."""
        return self.workdir / "topology.yaml"

    @property
    def secrets_path(self) -> Path:
        """Its secrets file (created on first render)."""
        return self.workdir / "s.yaml"

    @property
    def rendered(self) -> Path:
        """The `kgt render` output directory."""
        return self.workdir / "rendered"

    @property
    def tag(self) -> str:
        """The iptables comment on every rule this object adds."""
        return f"kgt-loopback:{os.getpid()}:{self.prefix}"

    def subnet(self, region: str) -> str:
        """The /24 of a region (`r2` → `127.0.2.0/24`)."""
        return f"{self.prefix}.{int(region.lstrip('r'))}.0/24"

    @property
    def region_names(self) -> list[str]:
        """r1 … rN."""
        return [f"r{i}" for i in range(1, self.regions + 1)]

    def topology(self) -> Any:
        """The loaded topology model."""
        from toolkit.topology import load

        return load(self.topology_path)

    def secrets(self) -> Any:
        """The loaded secrets."""
        from toolkit import secretstore

        return secretstore.for_topology(self.topology())

    def prepare(self) -> None:
        """Write the topology, render it with the real renderer, and lay out node homes."""
        from toolkit import secretstore
        from toolkit.render import engine, output
        from toolkit.topology import load

        self.workdir.mkdir(parents=True, exist_ok=True)
        # mariadbd runs as mysql (rsync SST's daemon drops root to nobody, which cannot write
        # a root-owned datadir), so the work directory must be reachable by that user.
        self.workdir.chmod(0o755)
        for parent in self.workdir.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise LoopbackError(f"{parent} is not traversable by user {MYSQL_USER}; use another work directory")
        self.topology_path.write_text(topology_yaml(self.name, self.prefix, self.regions, self.per_region))
        topology = load(self.topology_path)
        files = engine.render(topology, secretstore.for_topology(topology))
        output.write(topology, files, self.rendered, force=True)
        for host in topology.galera_nodes:
            home = self.workdir / "nodes" / host.name
            home.mkdir(parents=True, exist_ok=True)
            self.nodes[host.name] = Node(
                host.name,
                host.region,
                str(host.address),
                host.settings.galera.port,
                host.settings.galera.gcomm_port,
                self.rendered / host.name / "etc/mysql/mariadb.conf.d/60-galera.cnf",
                home,
            )

    # --- processes -----------------------------------------------------------------------

    def _check_free(self, node: Node) -> None:
        for port in (node.port, node.gcomm_port):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((node.address, port))
                except OSError as exc:
                    raise LoopbackError(
                        f"{node.address}:{port} is in use ({exc.strerror}): another loopback cluster? "
                        f"use another prefix (KGT_LOOPBACK_PREFIX=127.1)"
                    ) from None

    def _install_db(self) -> None:
        """Create one system datadir with mariadb-install-db and copy it to every node."""
        template = self.workdir / "datadir-template"
        if not (template / "mysql").is_dir():
            shutil.rmtree(template, ignore_errors=True)
            with (self.workdir / "install-db.log").open("wb") as log:
                done = subprocess.run(
                    [
                        "mariadb-install-db",
                        "--no-defaults",
                        f"--user={MYSQL_USER}",
                        f"--datadir={template}",
                        "--auth-root-authentication-method=socket",
                        "--skip-test-db",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=180,
                    check=False,
                )
            if done.returncode:
                raise LoopbackError(f"mariadb-install-db failed; see {self.workdir / 'install-db.log'}")
        for node in self.nodes.values():
            if not (node.datadir / "mysql").is_dir():
                shutil.rmtree(node.datadir, ignore_errors=True)
                shutil.copytree(template, node.datadir, symlinks=True)
            subprocess.run(["chown", "-R", f"{MYSQL_USER}:{MYSQL_USER}", str(node.home)], check=True, timeout=60)

    def start(self, name: str, *, new_cluster: bool = False, wait: bool = True, timeout: float = 120.0) -> None:
        """Start a node from its rendered config; wait until it is Synced unless `wait` is False."""
        node = self.nodes[name]
        if node.running:
            return
        self._check_free(node)
        args = [
            MARIADBD,
            f"--defaults-file={node.cnf}",
            f"--datadir={node.datadir}",
            f"--socket={node.socket}",
            f"--pid-file={node.home / 'mysqld.pid'}",
            f"--log-error={node.log}",
            f"--user={MYSQL_USER}",
            # Small redo log: faster install and SST; irrelevant to what the tests check.
            "--innodb-log-file-size=16M",
        ]
        if new_cluster:
            args.append("--wsrep-new-cluster")
        with (node.home / "stdout.log").open("ab") as out:
            node.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        if wait:
            self.wait_synced(name, timeout=timeout)

    def stop(self, name: str, *, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop a node this harness started: SIGTERM (clean leave) or SIGKILL (`kill`, a crash)."""
        node = self.nodes[name]
        process = node.process
        if process is None or process.poll() is not None:
            node.process = None
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        node.process = None

    def boot(self) -> None:
        """Prepare, bootstrap r1's first node, run bootstrap.sql, then join the others region by region."""
        started = time.monotonic()
        self.prepare()
        for node in self.nodes.values():
            self._check_free(node)
        self._install_db()
        names = list(self.nodes)
        self.start(names[0], new_cluster=True, timeout=self.boot_timeout)
        self.sql(names[0], (self.rendered / "sql" / "bootstrap.sql").read_text())
        for name in names[1:]:
            self.start(name, timeout=self.boot_timeout)
        self.boot_seconds = time.monotonic() - started

    # --- SQL as root over the unix socket -------------------------------------------------

    def sql(self, name: str, statements: str, timeout: float = 30.0) -> str:
        """Run SQL on a node as root through its socket; tab-separated output without headers."""
        node = self.nodes[name]
        done = subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={node.socket}",
                "-uroot",
                "-N",
                "-B",
                f"--connect-timeout={max(1, int(timeout))}",
            ],
            input=statements,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            raise LoopbackError(f"{name}: SQL failed: {done.stderr.strip()}")
        return done.stdout

    def status(self, name: str) -> dict[str, str]:
        """The node's wsrep status variables, lower-case names to values."""
        out = self.sql(name, "SHOW GLOBAL STATUS LIKE 'wsrep%';", timeout=10)
        return {k.lower(): v for k, _, v in (line.partition("\t") for line in out.splitlines())}

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
        """Poll `condition` until true; return the seconds it took, raise LoopbackError at the deadline."""
        started = time.monotonic()
        last: object = None
        while True:
            try:
                if condition():
                    return time.monotonic() - started
            except NodeDied:
                raise
            except (LoopbackError, subprocess.TimeoutExpired) as exc:
                last = exc
            if time.monotonic() - started > timeout:
                raise LoopbackError(f"{what}: not true after {timeout:.0f}s (last error: {last})")
            time.sleep(interval)

    def wait_synced(self, name: str, timeout: float = 120.0) -> float:
        """Wait until the node is Primary and Synced; fail early if its process died."""
        node = self.nodes[name]

        def synced() -> bool:
            if not node.running:
                raise NodeDied(f"{name}: mariadbd exited; see {node.log}")
            if not node.socket.exists():
                return False
            s = self.status(name)
            return s.get("wsrep_cluster_status") == "Primary" and s.get("wsrep_local_state_comment") == "Synced"

        try:
            return self.wait_for(f"{name} Synced", synced, timeout)
        except LoopbackError as exc:
            tail = node.log.read_text(errors="replace").splitlines()[-15:] if node.log.exists() else []
            raise LoopbackError(f"{exc}\n" + "\n".join(tail)) from None

    def cluster_status(self, name: str) -> str:
        """wsrep_cluster_status of a node ("Primary", "non-Primary", …), "down" if it does not answer."""
        try:
            return self.status(name).get("wsrep_cluster_status", "?")
        except (LoopbackError, subprocess.TimeoutExpired):
            return "down"

    def nodes_in(self, region: str) -> list[str]:
        """Names of a region's nodes."""
        return [n.name for n in self.nodes.values() if n.region == region]

    def wait_all_synced(self, timeout: float = 60.0) -> float:
        """Wait until every running node is Primary and Synced with the full cluster size."""
        size = str(len(self.nodes))

        def ok() -> bool:
            for name in self.nodes:
                s = self.status(name)
                if (s.get("wsrep_cluster_status"), s.get("wsrep_local_state_comment"), s.get("wsrep_cluster_size")) != (
                    "Primary",
                    "Synced",
                    size,
                ):
                    return False
            return True

        return self.wait_for("every node Synced", ok, timeout)

    # --- partitions ------------------------------------------------------------------------

    def _iptables(self, action: str, rule: list[str]) -> None:
        done = subprocess.run(
            ["iptables", "-w", "5", action, "INPUT", *rule], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode:
            raise LoopbackError(f"iptables {action} {' '.join(rule)}: {done.stderr.strip()}")

    def isolate(self, region: str) -> None:
        """Cut `region` off from every other region (both directions); idempotent."""
        if region in self._isolated:
            return
        mine = self.subnet(region)
        for other in self.region_names:
            if other == region:
                continue
            for src, dst in ((mine, self.subnet(other)), (self.subnet(other), mine)):
                rule = ["-s", src, "-d", dst, "-m", "comment", "--comment", self.tag, "-j", "DROP"]
                self._iptables("-I", rule)
                self._rules.append(rule)
        self._isolated.add(region)

    def blackhole(self, address: str) -> None:
        """Silently drop every packet to `address` (connects time out instead of being refused)."""
        rule = ["-d", f"{address}/32", "-m", "comment", "--comment", self.tag, "-j", "DROP"]
        self._iptables("-I", rule)
        self._rules.append(rule)

    def heal(self) -> None:
        """Delete exactly the rules this object inserted (partitions and black holes)."""
        errors = []
        while self._rules:
            rule = self._rules.pop()
            try:
                self._iptables("-D", rule)
            except LoopbackError as exc:
                errors.append(str(exc))
        self._isolated.clear()
        if errors:
            raise LoopbackError("; ".join(errors))

    # --- lifecycle ----------------------------------------------------------------------------

    def teardown(self) -> None:
        """Heal every partition and stop every process this object started (each step even if one fails)."""
        with contextlib.suppress(LoopbackError):
            self.heal()
        # Stop the bootstrap node last so the others leave cleanly.
        for node in reversed(list(self.nodes.values())):
            with contextlib.suppress(Exception):
                self.stop(node.name, timeout=30)
        if not self.keep_data and not any(n.running for n in self.nodes.values()):
            for node in self.nodes.values():
                shutil.rmtree(node.datadir, ignore_errors=True)
            shutil.rmtree(self.workdir / "datadir-template", ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        try:
            self.boot()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def _fixture() -> Iterator[LoopbackCluster]:  # pragma: no cover - needs root and MariaDB
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    base = Path(os.environ.get("KGT_LOOPBACK_DIR") or _tmpdir())
    cluster = LoopbackCluster(
        base,
        prefix=os.environ.get("KGT_LOOPBACK_PREFIX", "127.0"),
        keep_data=os.environ.get("KGT_LOOPBACK_KEEP") == "1",
    )
    with running(cluster):
        yield cluster


@contextlib.contextmanager
def running(cluster: LoopbackCluster) -> Iterator[LoopbackCluster]:
    """Boot `cluster`, yield it and always tear it down; a cluster that does not boot fails the test."""
    try:
        cluster.boot()
    except LoopbackError as exc:
        cluster.teardown()
        pytest.fail(f"loopback Galera cluster did not boot: {exc}")
    except BaseException:
        cluster.teardown()
        raise
    try:
        yield cluster
    finally:
        cluster.teardown()


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="kgt-loopback-")  # made 0755 by prepare()


if pytest is not None:
    loopback_cluster = pytest.fixture(scope="session", name="loopback_cluster")(_fixture)
