#!/usr/bin/env python3
"""Benchmark: what the verify loop sustains, and what kgt adds to a locking operation.

Against the loopback Galera cluster of tests/support/loopback_galera.py (booted here,
needs root and mariadb-server galera-4 rsync) or, with --topology, a running lab or
deployment, prints:

1. the verify workload run flat out (no pause) for --seconds: iterations/s, acknowledged
   increments/s, certification conflicts/s and history operations/s per region;
2. one region's locking operation (SELECT … FOR UPDATE on its row and the shared row,
   UPDATE both, COMMIT), run --count times sequentially with no other load, timed
   - through kgt (`workload.Worker.incr`: pymysql plus the history record),
   - through one persistent bare `mariadb` client process fed the same SQL on stdin,
   - through one `mariadb -e` process per operation (process start and connect included),
   side by side (p50/p95/p99/mean ms and operations/s).

    python3 benchmarks/verify_overhead.py [--seconds 10] [--count 300]
    python3 benchmarks/verify_overhead.py --topology topology/example.yaml --through vip
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit import accounts, secretstore  # noqa: E402
from toolkit.check import checker, counters, sessions, stats, workload  # noqa: E402
from toolkit.check.history import History  # noqa: E402
from toolkit.topology import load  # noqa: E402

LOCK_SQL = (
    "BEGIN; SELECT name, value FROM kgt_verify.counters WHERE name IN ('{r}', 'shared') ORDER BY name FOR UPDATE; "
    "UPDATE kgt_verify.counters SET value = value + 1, writer = 'bench' WHERE name = '{first}'; "
    "UPDATE kgt_verify.counters SET value = value + 1, writer = 'bench' WHERE name = '{second}'; COMMIT;"
)


@contextmanager
def cluster_or_topology(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """(topology, secrets): the given ones, or those of a loopback cluster booted for the run."""
    if args.topology:
        topology = load(args.topology)
        yield topology, secretstore.for_topology(topology, args.secrets)
        return
    from tests.support.loopback_galera import LoopbackCluster, skip_reason

    reason = skip_reason()
    if reason:
        sys.exit(f"cannot boot the loopback cluster: {reason}")
    work = Path(tempfile.mkdtemp(prefix="kgt-bench-"))
    cluster = LoopbackCluster(work, prefix=os.environ.get("KGT_LOOPBACK_PREFIX", "127.0"))
    with cluster:
        print(f"loopback cluster booted in {cluster.boot_seconds:.1f}s ({work})")
        yield cluster.topology(), cluster.secrets()


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def flat_out(topology: Any, work: list[sessions.Target], password: str, seconds: float) -> None:
    history = History()
    options = workload.Options(duration=seconds, interval=0.0, settle=5.0)
    started = time.monotonic()
    workload.run(topology, work, password, history, options, threading.Event(), threading.Event())
    report = checker.check(history.ops)
    print(
        f"\n1. verify loop flat out for {seconds:g}s through {len(work)} regions "
        f"(verdict {report.verdict}, {time.monotonic() - started:.1f}s with setup and final reads)"
    )
    rows = [["region", "iterations/s", "acked incr/s", "conflicts/s", "ops/s", "commit p50 ms", "commit p99 ms"]]
    for name, r in report.regions.items():
        ops = sum(1 for op in history.ops if op.process == name and op.type != "invoke")
        iterations = sum(1 for op in history.ops if op.process == name and op.f == "status" and op.type == "invoke")
        lat = r.commit_latency
        rows.append(
            [
                name,
                f"{iterations / seconds:.0f}",
                f"{r.writes['ok'] / seconds:.0f}",
                f"{r.conflicts / seconds:.0f}",
                f"{ops / seconds:.0f}",
                f"{(lat['p50'] or 0) * 1000:.2f}",
                f"{(lat['p99'] or 0) * 1000:.2f}",
            ]
        )
    table(rows)


def through_kgt(target: sessions.Target, password: str, count: int) -> list[float]:
    history = History()
    worker = workload.Worker(target, password, history, workload.Acked(), workload.Options(), threading.Event())
    latencies = []
    for _ in range(count):
        worker.incr()
        last = history.ops[-1]
        if last.type == "ok" and last.latency is not None:
            latencies.append(last.latency)
    worker._drop("write")
    return latencies


def client_args(target: sessions.Target, defaults: Path) -> list[str]:
    return [
        "mariadb",
        f"--defaults-extra-file={defaults}",
        "-h",
        target.address,
        "-P",
        str(target.port),
        "-u",
        accounts.VERIFY_USER,
        "-N",
        "-B",
        "--unbuffered",
        # Over TLS on a TLS site, verified as kgt's own client verifies it.
        *(["--ssl", f"--ssl-ca={target.ca}", "--ssl-verify-server-cert"] if target.ca is not None else []),
    ]


def through_mariadb_session(target: sessions.Target, defaults: Path, count: int) -> list[float]:
    first, second = sorted([target.region, "shared"])
    sql = LOCK_SQL.format(r=target.region, first=first, second=second)
    proc = subprocess.Popen(
        client_args(target, defaults),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdin is not None and proc.stdout is not None
    latencies = []
    try:
        for i in range(count):
            marker = f"done-{i}"
            started = time.perf_counter()
            proc.stdin.write(f"{sql} SELECT '{marker}';\n")
            proc.stdin.flush()
            for line in proc.stdout:
                if line.strip() == marker:
                    break
            else:
                raise RuntimeError(f"mariadb client ended: {proc.stderr.read() if proc.stderr else ''}")
            latencies.append(time.perf_counter() - started)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    return latencies


def through_mariadb_per_op(target: sessions.Target, defaults: Path, count: int) -> list[float]:
    first, second = sorted([target.region, "shared"])
    sql = LOCK_SQL.format(r=target.region, first=first, second=second)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([*client_args(target, defaults), "-e", sql], check=True, capture_output=True, timeout=30)
        latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", type=Path, help="a running cluster's topology (default: boot a loopback one)")
    parser.add_argument("--secrets", type=Path)
    parser.add_argument("--through", choices=["vip", "nodes"], default="nodes")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with cluster_or_topology(args) as (topology, secrets):
        work = sessions.targets(topology, args.through)
        password = secrets["verify_password"]
        counters.setup(topology, work, secrets["admin_password"], password, 5.0)
        flat_out(topology, work, password, args.seconds)
        target = work[0]
        with tempfile.NamedTemporaryFile("w", prefix="kgt-bench-", suffix=".cnf") as defaults:
            os.chmod(defaults.name, 0o600)
            defaults.write(f"[client]\npassword={password}\n")
            defaults.flush()
            results = {
                "kgt Worker.incr (pymysql + history)": through_kgt(target, password, args.count),
                "mariadb client, one session": through_mariadb_session(target, Path(defaults.name), args.count),
                "mariadb -e, one process per op": through_mariadb_per_op(
                    target, Path(defaults.name), max(20, args.count // 5)
                ),
            }
        print(f"\n2. locking operation through {target.name} ({target.where}), sequential, no other load")
        rows = [["client", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms", "ops/s"]]
        for name, lat in results.items():
            s = stats.summary(lat)
            ms = {k: f"{(v or 0) * 1000:.2f}" for k, v in s.items() if k != "n"}
            rate = len(lat) / sum(lat) if lat else 0.0
            rows.append([name, str(s["n"]), ms["p50"], ms["p95"], ms["p99"], ms["mean"], f"{rate:.0f}"])
        table(rows)


if __name__ == "__main__":
    main()
