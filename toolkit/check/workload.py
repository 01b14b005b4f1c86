"""The verify workload: per region, lock-and-increment through that region, then read and verify.

The seed's loop ("check cluster size and status; for each region do a locking operation
in that region; then for each region read and verify"), made rigorous: one worker per
region (a Jepsen process) repeats

1. `status`: wsrep_cluster_status/size/state of the region's endpoint;
2. `incr`: `SELECT … FOR UPDATE` on the region's row and the shared row, write each
   value + 1, COMMIT — ok, fail (certainly not committed: refused, certification
   conflict, non-Primary) or info (unknown: timeout or connection lost in COMMIT);
3. `read`: every counter with `wsrep_dirty_reads=1` (so a non-Primary region still
   answers), re-read until it shows every write acknowledged before the read began, for
   at most `visible_within` seconds;

into a `history.History`. `Options.mode` "lockstep" runs the seed's loop literally instead:
one thread, each iteration `status` through every region, then `incr` through every region
in turn, then `read` from every region — no two of kgt's own writes race (each increment's
locking read waits for causality, wsrep_sync_wait=1, so it sees the previous region's
increment applied), so over a slow WAN no region loses every certification race to a
nearer one (the concurrent default
measures contention too, but starves the far region); a dead region costs each iteration
at most the call deadline. Every call has a deadline; a broken connection is replaced on
the next operation; a region that is down is recorded, never fatal. Around the workers,
the "setup" process measures the RTT (TCP connect time, a few per region) and reads the
initial counters, and the "final" process reads the status and counters of every node
directly at the end. `checker.check` then judges the history alone.

The table `SCHEMA.counters` (one row per region plus `shared`; the schema is
`Options.schema`, kgt_verify by default) and the user kgt_verify (SELECT, INSERT, UPDATE
on each schema it is used with, nothing else) are created through kgt_admin on each run,
idempotently; `cleanup` drops the schema and the user. A run assumes it is the only
writer of its schema (two runs on one schema report `unexpected-write`), which is why the
drills use a schema of their own.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from toolkit import db
from toolkit.check.history import History, Op
from toolkit.check.nodes import classify, one_line
from toolkit.check.state import NETWORK_ERRORS, CannotCheck, NothingReachable
from toolkit.topology.model import Host, Topology
from toolkit.wsrep import PRIMARY, NodeState

SCHEMA = "kgt_verify"  # the default of Options.schema and of the functions that take one
# A plain SQL identifier: it is written into statements unquoted.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,63}")
VERIFY_USER = "kgt_verify"
ADMIN_USER = "kgt_admin"
SHARED = "shared"
# Errors after which a transaction certainly did not commit, even when raised by COMMIT.
DEFINITE = frozenset({"certification-conflict", "non-primary", "access-denied"})


class SchemaMissing(Exception):
    """The counters the workload needs are not in the table (dropped while running?)."""


def counters_table(schema: str = SCHEMA) -> str:
    """`schema.counters`, once `schema` is known to be a plain SQL identifier (else UNKNOWN in one line)."""
    if not _IDENTIFIER.fullmatch(schema):
        raise CannotCheck(
            f"UNKNOWN: bad schema name {schema!r}: want a plain SQL identifier "
            "(a-z, 0-9 and _, not starting with a digit, at most 64 characters)"
        )
    return f"{schema}.counters"


@dataclass(frozen=True)
class Target:
    """Where a region's worker connects: a VIP (HAProxy write port) or a Galera node."""

    region: str
    name: str
    address: str
    port: int
    read_port: int | None = None  # a VIP's reads go to HAProxy's read listener (dirty reads allowed)

    def reads(self) -> Target:
        """Where reads go: the read listener of a VIP, else the same endpoint."""
        return replace(self, port=self.read_port) if self.read_port else self

    @property
    def where(self) -> str:
        """`address:port`."""
        return f"{self.address}:{self.port}"


MODES = ("concurrent", "lockstep")


@dataclass(frozen=True)
class Options:
    """How the workload runs."""

    duration: float | None = 60.0  # seconds; None with iterations
    iterations: int | None = None  # per region
    timeout: float = 5.0  # deadline of every call (connect, query, commit)
    interval: float = 0.05  # pause between a worker's iterations
    visible_within: float = 2.0  # how long a read re-reads until it shows acknowledged writes
    sync_wait: int = 0  # wsrep_sync_wait of reads
    settle: float = 10.0  # how long the end waits for nodes to be Synced before the final reads
    rtt_samples: int = 5
    schema: str = SCHEMA  # the database holding the counters: one per concurrent writer (drills: kgt_drill)
    mode: str = "concurrent"  # or "lockstep": the seed's loop, one region at a time (see the module docstring)

    def __post_init__(self) -> None:
        counters_table(self.schema)  # refuse a bad name here, before anything connects
        if self.mode not in MODES:
            raise CannotCheck(f"UNKNOWN: bad mode '{self.mode}' (modes: {', '.join(MODES)})")

    @property
    def writer_sync_wait(self) -> int:
        """wsrep_sync_wait of the increment's session: 1 (causal) in lockstep, the design's 0 otherwise.

        Lockstep promises that kgt's writes never race. With wsrep_sync_wait=0 a node may still be
        applying the previous region's acknowledged increment when its own `SELECT … FOR UPDATE`
        runs; its write-set would then depend on a stale seqno and lose certification anyway.
        """
        return 1 if self.mode == "lockstep" else 0

    @property
    def table(self) -> str:
        """The counters table, `schema.counters`."""
        return counters_table(self.schema)


def targets(topology: Topology, through: str) -> list[Target]:
    """One target per region: its first VIP (writes to HAProxy's write port, reads to its read port) or first node."""
    out = []
    for region in topology.regions:
        if through == "vip":
            if not region.vips:
                raise CannotCheck(f"UNKNOWN: region {region.name} has no VIP: use --through nodes")
            proxies = region.with_role("haproxy") or region.hosts
            vip = region.vips[0]
            haproxy = proxies[0].settings.haproxy
            out.append(Target(region.name, vip.name, str(vip.address), haproxy.write_port, haproxy.read_port))
        elif region.galera_nodes:
            node = region.galera_nodes[0]
            out.append(Target(region.name, node.name, str(node.address), node.settings.galera.port))
    if not out:
        raise CannotCheck("UNKNOWN: no region has a Galera node to verify through")
    return out


def node_target(host: Host) -> Target:
    """A Galera node as a target."""
    return Target(host.region, host.name, str(host.address), host.settings.galera.port)


def _connect(target: Target, user: str, password: str, timeout: float, **session: int) -> Any:
    conn = db.connect(
        db.Endpoint(target.address, target.port, user, password),
        connect_timeout=min(timeout, 2.0),
        read_timeout=timeout,
        write_timeout=timeout,
    )
    try:
        with conn.cursor() as cur:
            for name, value in session.items():
                cur.execute(f"SET SESSION {name} = %s", (value,))
    except BaseException:
        _close(conn)
        raise
    return conn


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


# --- schema ------------------------------------------------------------------------------


def _admin_each(
    candidates: Iterable[Target], password: str, timeout: float, action: Callable[[Any], None], what: str
) -> Target:
    """Run `action` on the first candidate that works as kgt_admin; raise a one-line error otherwise."""
    failures: list[tuple[str, str, str]] = []
    for target in candidates:
        conn = None
        try:
            conn = _connect(target, ADMIN_USER, password, timeout)
            action(conn)
            return target
        except Exception as exc:
            failures.append((target.name, classify(exc), one_line(exc)))
        finally:
            _close(conn)
    detail = "; ".join(f"{name}: {cls}" for name, cls, _ in failures)
    classes = {cls for _, cls, _ in failures}
    if classes <= NETWORK_ERRORS | {"non-primary"}:
        raise NothingReachable(f"CRITICAL: cannot {what}: no Primary node reachable ({detail})")
    raise CannotCheck(f"UNKNOWN: cannot {what} ({detail}; first error: {failures[0][2]})")


def _admin_candidates(topology: Topology, primary: list[Target]) -> list[Target]:
    seen = {t.where for t in primary}
    return [*primary, *(node_target(h) for h in topology.galera_nodes if node_target(h).where not in seen)]


def setup(
    topology: Topology,
    work: list[Target],
    admin_password: str,
    verify_password: str,
    timeout: float,
    *,
    schema: str = SCHEMA,
) -> Target:
    """Create the schema, the rows and the least-privilege user (idempotent); return where it ran.

    The user is shared by every schema: each setup grants it on its own schema, in addition
    to what it already had.
    """
    table = counters_table(schema)
    rows = [t.region for t in work] + [SHARED]

    def create(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {schema}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (name VARCHAR(64) NOT NULL PRIMARY KEY, "
                "value BIGINT NOT NULL DEFAULT 0, writer VARCHAR(64) NULL) ENGINE=InnoDB"
            )
            cur.executemany(f"INSERT IGNORE INTO {table} (name, value) VALUES (%s, 0)", [(r,) for r in rows])
            cur.execute(f"CREATE USER IF NOT EXISTS '{VERIFY_USER}'@'%%' IDENTIFIED BY %s", (verify_password,))
            cur.execute(f"ALTER USER '{VERIFY_USER}'@'%%' IDENTIFIED BY %s", (verify_password,))
            cur.execute(f"GRANT SELECT, INSERT, UPDATE ON {schema}.* TO '{VERIFY_USER}'@'%'")

    return _admin_each(
        _admin_candidates(topology, work),
        admin_password,
        timeout,
        create,
        f"create schema {schema} and user {VERIFY_USER}",
    )


@dataclass(frozen=True)
class Cleaned:
    """What `cleanup` did: which schema, where, and which other schemas kept the shared user alive."""

    schema: str
    target: Target
    user_kept_for: tuple[str, ...]

    def summary(self) -> str:
        """One line for the operator."""
        user = (
            f"kept user {VERIFY_USER} (still granted on {', '.join(self.user_kept_for)})"
            if self.user_kept_for
            else f"dropped user {VERIFY_USER}"
        )
        return f"dropped schema {self.schema}, {user} (through {self.target.name})"


def cleanup(
    topology: Topology, work: list[Target], admin_password: str, timeout: float, *, schema: str = SCHEMA
) -> Cleaned:
    """Drop the schema and its grant; drop the shared user too once no other schema uses it.

    A drill (schema kgt_drill) or another verify run may be using kgt_verify right now:
    its grants on schemas that still exist keep the user alive.
    """
    counters_table(schema)
    kept: list[str] = []

    def drop(conn: Any) -> None:
        kept.clear()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {schema}")
            cur.execute("SELECT Db FROM mysql.db WHERE User = %s AND Host = '%%'", (VERIFY_USER,))
            granted = {str(row[0]) for row in cur.fetchall()}
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            existing = {str(row[0]) for row in cur.fetchall()}
            kept.extend(sorted((granted & existing) - {schema}))
            if not kept:
                cur.execute(f"DROP USER IF EXISTS '{VERIFY_USER}'@'%'")
            elif schema in granted:
                cur.execute(f"REVOKE ALL PRIVILEGES ON {schema}.* FROM '{VERIFY_USER}'@'%'")

    target = _admin_each(
        _admin_candidates(topology, work), admin_password, timeout, drop, f"drop schema {schema} and user {VERIFY_USER}"
    )
    return Cleaned(schema, target, tuple(kept))


# --- operations ----------------------------------------------------------------------------


class Acked:
    """The highest acknowledged value of each counter, shared by the workers (for re-reads only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._max: dict[str, int] = {}

    def note(self, values: dict[str, int]) -> None:
        """Record an acknowledged increment's values."""
        with self._lock:
            for row, value in values.items():
                self._max[row] = max(value, self._max.get(row, value))

    def snapshot(self) -> dict[str, int]:
        """A copy of the current maxima."""
        with self._lock:
            return dict(self._max)


def read_counters(conn: Any, *, schema: str = SCHEMA) -> dict[str, int]:
    """Every counter of the schema."""
    table = counters_table(schema)
    with conn.cursor() as cur:
        cur.execute(f"SELECT name, value FROM {table}")
        return {str(name): int(value) for name, value in cur.fetchall()}


def read_status(conn: Any) -> dict[str, Any]:
    """The few wsrep status values a status operation records."""
    s = NodeState.from_rows(db.wsrep_status(conn))
    return {
        "status": s.cluster_status,
        "size": s.cluster_size,
        "state": s.local_state_comment,
        "conf_id": s.conf_id,
        "node": node_name(conn),
    }


def node_name(conn: Any) -> str | None:
    """`@@wsrep_node_name` of the node behind a connection (a VIP may lead anywhere)."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@wsrep_node_name")
        row = cur.fetchone()
    return str(row[0]) if row and row[0] is not None else None


def _go_on(stop: threading.Event, options: Options, iterations: int, deadline: float | None) -> bool:
    """Whether a loop that has done `iterations` goes on: not stopped, under the count, before the deadline."""
    if stop.is_set():
        return False
    if options.iterations is not None and iterations >= options.iterations:
        return False
    return deadline is None or time.monotonic() < deadline


class Worker(threading.Thread):
    """A region's process: status, incr, read-and-verify, until told to stop."""

    def __init__(
        self,
        target: Target,
        password: str,
        history: History,
        acked: Acked,
        options: Options,
        stop: threading.Event,
        deadline: float | None = None,
    ) -> None:
        super().__init__(name=f"verify-{target.region}", daemon=True)
        self.target, self.password, self.history = target, password, history
        self.acked, self.options, self.stop_event = acked, options, stop
        self.deadline = deadline  # time.monotonic() at which to stop, shared by every worker
        self.iterations = 0
        self._write: Any = None
        self._read: Any = None
        self._backoff = 0.0

    # connections: dropped on any error, re-opened by the next operation
    def _writer(self) -> Any:
        if self._write is None:
            self._write = _connect(
                self.target,
                VERIFY_USER,
                self.password,
                self.options.timeout,
                wsrep_dirty_reads=0,
                innodb_lock_wait_timeout=max(1, round(self.options.timeout)),
                wsrep_sync_wait=self.options.writer_sync_wait,
            )
        return self._write

    def _reader(self) -> Any:
        if self._read is None:
            self._read = _connect(
                self.target.reads(),
                VERIFY_USER,
                self.password,
                self.options.timeout,
                wsrep_dirty_reads=1,
                wsrep_sync_wait=self.options.sync_wait,
            )
        return self._read

    def _drop(self, which: str) -> None:
        conn = self._write if which == "write" else self._read
        _close(conn)
        if which == "write":
            self._write = None
        else:
            self._read = None

    def _invoke(self, f: str, value: Any = None, poll: int | None = None) -> Op:
        target = self.target if f == "incr" else self.target.reads()
        return self.history.invoke(
            self.target.region,
            f,
            region=self.target.region,
            host=self.target.name,
            address=target.where,
            value=value,
            poll=poll,
        )

    def _failed(self, op: Op, exc: BaseException, which: str, type_: str = "fail") -> None:
        error = classify(exc)
        self.history.complete(op, type_, error=error, message=one_line(exc))
        if error == "certification-conflict":
            return  # a lost race on the shared row: the connection is fine, retry at once
        self._drop(which)
        # Back off a little against a dead or non-Primary endpoint, without stalling a healthy one.
        self._backoff = min(1.0, self._backoff * 2 or 0.05)

    def status(self) -> None:
        """Record the endpoint's cluster status."""
        op = self._invoke("status")
        try:
            value = read_status(self._reader())
        except Exception as exc:
            self._failed(op, exc, "read")
            return
        self.history.complete(op, "ok", value)
        self._backoff = 0.0

    def incr(self) -> None:
        """The locking operation: lock the region's row and the shared row, increment both, commit."""
        rows = sorted([self.target.region, SHARED])
        table = self.options.table
        op = self._invoke("incr", {"rows": rows})
        committing = False
        try:
            conn = self._writer()
            conn.begin()
            with conn.cursor() as cur:
                # @@wsrep_node_name in the locking read: which node serves this transaction (through a
                # VIP it may be another region's, as a backup), at no extra round trip.
                cur.execute(
                    f"SELECT name, value, @@wsrep_node_name FROM {table} WHERE name IN (%s, %s) "
                    "ORDER BY name FOR UPDATE",
                    tuple(rows),
                )
                found = cur.fetchall()
                current = {str(n): int(v) for n, v, _ in found}
                node = str(found[0][2]) if found and found[0][2] is not None else None
                if set(current) != set(rows):
                    raise SchemaMissing(f"rows {sorted(set(rows) - set(current))} missing from {table}")
                new = {row: current[row] + 1 for row in rows}
                for row in rows:
                    cur.execute(
                        f"UPDATE {table} SET value = %s, writer = %s WHERE name = %s",
                        (new[row], self.target.region, row),
                    )
            committing = True
            conn.commit()
        except Exception as exc:
            unknown = committing and classify(exc) not in DEFINITE
            self._failed(op, exc, "write", "info" if unknown else "fail")
            return
        self.acked.note(new)
        self.history.complete(op, "ok", {**new, "node": node} if node else new)
        self._backoff = 0.0

    def read_and_verify(self) -> None:
        """Read every counter; re-read until acknowledged writes show, for at most `visible_within`."""
        required = self.acked.snapshot()
        give_up = time.monotonic() + self.options.visible_within
        poll, pause = 0, 0.002
        while True:
            op = self._invoke("read", poll=poll)
            try:
                values = read_counters(self._reader(), schema=self.options.schema)
            except Exception as exc:
                self._failed(op, exc, "read")
                return
            self.history.complete(op, "ok", values)
            if all(values.get(row, -1) >= v for row, v in required.items()):
                return
            if time.monotonic() + pause > give_up or self.stop_event.is_set():
                return
            time.sleep(pause)
            pause = min(0.1, pause * 2)
            poll += 1

    def run(self) -> None:
        """Iterate until the stop event, the deadline or the iteration count."""
        try:
            while _go_on(self.stop_event, self.options, self.iterations, self.deadline):
                self.status()
                self.incr()
                self.read_and_verify()
                self.iterations += 1
                # Jitter keeps the regions' workers from running in lockstep.
                pause = max(self.options.interval * random.uniform(0.5, 1.5), self._backoff)
                if pause:
                    self.stop_event.wait(pause)
        finally:
            self.close()

    def close(self) -> None:
        """Close both connections (the next operation would open new ones)."""
        self._drop("write")
        self._drop("read")


# --- setup and final measurements ------------------------------------------------------------


def measure_rtt(history: History, hosts: Iterable[Host], samples: int, timeout: float = 2.0) -> None:
    """Record TCP connect times to each host's MariaDB port (process "setup", f "rtt")."""
    for host in hosts:
        target = node_target(host)
        for _ in range(samples):
            op = history.invoke("setup", "rtt", region=host.region, host=host.name, address=target.where)
            started = time.perf_counter()
            try:
                with socket.create_connection((target.address, target.port), timeout=timeout):
                    elapsed = time.perf_counter() - started
            except OSError as exc:
                history.complete(op, "fail", error=classify(exc), message=one_line(exc))
                break
            history.complete(op, "ok", round(elapsed, 6))


def initial_read(history: History, work: list[Target], password: str, timeout: float, *, schema: str = SCHEMA) -> None:
    """Read the counters once before the workers start, causally (sync_wait=1), from the first that answers."""
    for target in work:
        op = history.invoke("setup", "read", region=target.region, host=target.name, address=target.where, poll=0)
        conn = None
        try:
            conn = _connect(target, VERIFY_USER, password, timeout, wsrep_sync_wait=1)
            history.complete(op, "ok", read_counters(conn, schema=schema))
            return
        except Exception as exc:
            history.complete(op, "fail", error=classify(exc), message=one_line(exc))
        finally:
            _close(conn)


def final_reads(history: History, topology: Topology, password: str, options: Options, abort: threading.Event) -> None:
    """Wait (bounded) for every node to be Primary and Synced, then read each node's status and counters."""
    nodes = [node_target(h) for h in topology.galera_nodes]
    settle_until = time.monotonic() + options.settle
    while not abort.is_set() and time.monotonic() < settle_until:
        if all(_synced(t, password, options.timeout) for t in nodes):
            break
        abort.wait(0.5)
    for target in nodes:
        if abort.is_set():
            return
        conn = None
        op = history.invoke("final", "status", region=target.region, host=target.name, address=target.where)
        try:
            conn = _connect(target, VERIFY_USER, password, options.timeout, wsrep_dirty_reads=1)
            status = read_status(conn)
        except Exception as exc:
            history.complete(op, "fail", error=classify(exc), message=one_line(exc))
            _close(conn)
            continue
        history.complete(op, "ok", status)
        op = history.invoke("final", "read", region=target.region, host=target.name, address=target.where, poll=0)
        try:
            # On a Primary node wait for every earlier write-set to be applied first.
            with conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = %s", (1 if status["status"] == PRIMARY else 0,))
            history.complete(op, "ok", read_counters(conn, schema=options.schema))
        except Exception as exc:
            history.complete(op, "fail", error=classify(exc), message=one_line(exc))
        finally:
            _close(conn)


def _synced(target: Target, password: str, timeout: float) -> bool:
    conn = None
    try:
        conn = _connect(target, VERIFY_USER, password, min(timeout, 2.0))
        s = read_status(conn)
        return bool(s["status"] == PRIMARY and s["state"] == "Synced")
    except Exception:
        return False
    finally:
        _close(conn)


class Lockstep(threading.Thread):
    """The seed's loop: every region's status, then each region's increment in turn, then every read."""

    def __init__(self, workers: list[Worker], options: Options, stop: threading.Event, deadline: float | None) -> None:
        super().__init__(name="verify-lockstep", daemon=True)
        self.workers, self.options, self.stop_event, self.deadline = workers, options, stop, deadline

    def run(self) -> None:
        """Iterate until the stop event, the deadline or the iteration count (per region, as concurrent)."""
        iterations = 0
        try:
            while _go_on(self.stop_event, self.options, iterations, self.deadline):
                for step in (Worker.status, Worker.incr, Worker.read_and_verify):
                    for w in self.workers:
                        if self.stop_event.is_set():
                            return
                        step(w)
                iterations += 1
                if self.options.interval:
                    self.stop_event.wait(self.options.interval)
        finally:
            for w in self.workers:
                w.close()


def run(
    topology: Topology,
    work: list[Target],
    verify_password: str,
    history: History,
    options: Options,
    stop: threading.Event,
    abort: threading.Event,
) -> None:
    """Setup measurements, the region workers until done or `stop`, then the final reads (skipped on `abort`)."""
    measure_rtt(history, [h for r in topology.regions for h in r.galera_nodes[:1]], options.rtt_samples)
    initial_read(history, work, verify_password, options.timeout, schema=options.schema)
    acked = Acked()
    deadline = time.monotonic() + options.duration if options.duration is not None else None
    workers = [Worker(t, verify_password, history, acked, options, stop, deadline) for t in work]
    threads: list[threading.Thread] = (
        [Lockstep(workers, options, stop, deadline)] if options.mode == "lockstep" else list(workers)
    )
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)
    # Interrupted: read the final state at once instead of waiting for nodes to settle.
    final_reads(history, topology, verify_password, replace(options, settle=0.0) if stop.is_set() else options, abort)
