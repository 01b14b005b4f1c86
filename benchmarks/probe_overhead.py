#!/usr/bin/env python3
"""Benchmark: wall time of `kgt probe galera` against a bare `mariadb -e "SHOW GLOBAL STATUS …"`.

Both ask the same Galera node the same question, as separate processes, the way a
monitoring server runs them. Boots a one-node loopback Galera cluster
(tests/support/loopback_galera.py; needs root and MariaDB) unless --host is given, then
times N runs of each variant, interleaved, and prints the medians and the ratio to the
bare client. The interpreter floor (`python3 -c pass`) is printed too: no Python probe
can be faster than it.

    python3 benchmarks/probe_overhead.py [--runs 30]
    python3 benchmarks/probe_overhead.py --host 127.0.1.11 --port 3306 --password-file pw
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERY = "SHOW GLOBAL STATUS LIKE 'wsrep%'"


def timed(cmd: list[str]) -> float:
    """Seconds one run of `cmd` takes; fails loudly if it does not succeed."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, cwd=ROOT, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # the probe may WARN (cluster size below the topology's)
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stdout!r} {done.stderr!r}")
    return elapsed


def measure(variants: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Interleaved runs (one of each per round), after one warm-up round."""
    for cmd in variants.values():
        timed(cmd)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, cmd in variants.items():
            samples[name].append(timed(cmd))
    return samples


def report(samples: dict[str, list[float]], baseline: str) -> None:
    """Median, p90 and the ratio of medians to the baseline."""
    base = statistics.median(samples[baseline])
    print(f"{'variant':<34} {'median ms':>10} {'p90 ms':>8} {'ratio':>7}")
    for name, values in samples.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        median = statistics.median(values)
        print(f"{name:<34} {median * 1000:>10.1f} {p90 * 1000:>8.1f} {median / base:>6.2f}x")


def variants(
    host: str, port: int, password: str, password_file: Path, topology: Path | None, node: str | None
) -> dict[str, list[str]]:
    """The commands compared."""
    out = {
        "mariadb -e (baseline)": [
            "mariadb",
            "--no-defaults",
            "-h",
            host,
            "-P",
            str(port),
            "-u",
            "kgt_health",
            f"-p{password}",
            "-e",
            QUERY,
        ],
        "kgt probe galera (plain args)": [
            sys.executable,
            "-m",
            "toolkit.cli",
            "probe",
            "galera",
            "-H",
            host,
            "-P",
            str(port),
            "--password-file",
            str(password_file),
        ],
    }
    if topology is not None and node is not None:
        out["kgt probe galera TOPOLOGY"] = [
            sys.executable,
            "-m",
            "toolkit.cli",
            "probe",
            "galera",
            str(topology),
            "--node",
            node,
        ]
    out["python3 -c pass (floor)"] = [sys.executable, "-c", "pass"]
    return out


def main() -> int:
    """Run the benchmark; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--host", help="an existing node instead of booting one")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--password-file", type=Path, help="kgt_health's password (with --host)")
    parser.add_argument(
        "--prefix",
        default=os.environ.get("KGT_LOOPBACK_PREFIX", "127.9"),
        help="loopback prefix of the booted node (default 127.9: away from the test clusters)",
    )
    args = parser.parse_args()

    if args.host:
        if args.password_file is None:
            parser.error("--host needs --password-file")
        password = args.password_file.read_text().splitlines()[0].strip()
        table = measure(variants(args.host, args.port, password, args.password_file, None, None), args.runs)
        report(table, "mariadb -e (baseline)")
        return 0

    from tests.support.loopback_galera import LoopbackCluster, skip_reason

    reason = skip_reason()
    if reason:
        raise SystemExit(f"cannot boot a node: {reason}")
    with (
        tempfile.TemporaryDirectory(prefix="kgt-bench-") as work,
        LoopbackCluster(Path(work), regions=1, per_region=1, prefix=args.prefix, name="kgt-bench") as cluster,
    ):
        node = next(iter(cluster.nodes.values()))
        password = cluster.secrets()["health_password"]
        password_file = Path(work) / "pw"
        password_file.write_text(password + "\n")
        print(f"node {node.name} at {node.address}:{node.port}; {args.runs} runs each, interleaved")
        table = measure(
            variants(node.address, node.port, password, password_file, cluster.topology_path, node.name), args.runs
        )
    report(table, "mariadb -e (baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
