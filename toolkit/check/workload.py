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
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from toolkit.accounts import VERIFY_USER
from toolkit.check import sessions
from toolkit.check.counters import SCHEMA, SHARED, counters_table, read_counters
from toolkit.check.history import History, Op
from toolkit.check.nodes import classify, one_line
from toolkit.check.sessions import Target, node_target
from toolkit.errors import CannotCheck, DeadlineExceeded, SchemaMissing
from toolkit.retry import poll
from toolkit.topology.model import Host, Topology
from toolkit.wsrep import PRIMARY

# Errors after which a transaction certainly did not commit, even when raised by COMMIT.
DEFINITE = frozenset({"certification-conflict", "non-primary", "access-denied"})


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
            raise CannotCheck(f"bad mode '{self.mode}' (modes: {', '.join(MODES)})")

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
            self._write = sessions.connect(
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
            self._read = sessions.connect(
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
        sessions.close(conn)
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
            value = sessions.read_status(self._reader())
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
        reads = 0

        def read() -> bool:
            """One read; done once it shows every required write, or failed (recorded as such)."""
            nonlocal reads
            op = self._invoke("read", poll=reads)
            reads += 1
            try:
                values = read_counters(self._reader(), schema=self.options.schema)
            except Exception as exc:
                self._failed(op, exc, "read")
                return True
            self.history.complete(op, "ok", values)
            return all(values.get(row, -1) >= v for row, v in required.items())

        with contextlib.suppress(DeadlineExceeded):  # still stale after `visible_within`, or stopped
            poll(
                read,
                timeout=self.options.visible_within,
                what="acknowledged writes visible",
                interval=0.002,
                max_interval=0.1,
                retry_on=(),
                stop=self.stop_event.is_set,
            )

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
        target = Target(host.region, host.name, str(host.address), host.settings.galera.port)  # TCP only
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
            conn = sessions.connect(target, VERIFY_USER, password, timeout, wsrep_sync_wait=1)
            history.complete(op, "ok", read_counters(conn, schema=schema))
            return
        except Exception as exc:
            history.complete(op, "fail", error=classify(exc), message=one_line(exc))
        finally:
            sessions.close(conn)


def final_reads(history: History, topology: Topology, password: str, options: Options, abort: threading.Event) -> None:
    """Wait (bounded) for every node to be Primary and Synced, then read each node's status and counters."""
    nodes = [node_target(topology, h) for h in topology.galera_nodes]
    if options.settle > 0 and not abort.is_set():
        with contextlib.suppress(DeadlineExceeded):  # not all Synced in time, or aborted: read them as they are
            poll(
                lambda: all(_synced(t, password, options.timeout) for t in nodes),
                timeout=options.settle,
                what="every node Primary and Synced",
                interval=0.5,
                max_interval=0.5,
                retry_on=(),
                stop=abort.is_set,
            )
    for target in nodes:
        if abort.is_set():
            return
        conn = None
        op = history.invoke("final", "status", region=target.region, host=target.name, address=target.where)
        try:
            conn = sessions.connect(target, VERIFY_USER, password, options.timeout, wsrep_dirty_reads=1)
            status = sessions.read_status(conn)
        except Exception as exc:
            history.complete(op, "fail", error=classify(exc), message=one_line(exc))
            sessions.close(conn)
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
            sessions.close(conn)


def _synced(target: Target, password: str, timeout: float) -> bool:
    conn = None
    try:
        conn = sessions.connect(target, VERIFY_USER, password, min(timeout, 2.0))
        s = sessions.read_status(conn)
        return bool(s["status"] == PRIMARY and s["state"] == "Synced")
    except Exception:
        return False
    finally:
        sessions.close(conn)


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
