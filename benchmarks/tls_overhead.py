#!/usr/bin/env python3
"""Benchmark: what TLS costs the locking operation — the example lab with TLS against the same lab without.

Not a test: it prints figures. It boots the example topology twice, one lab at a time,
through the venv's installed `kgt` console script (as operators run it): once as shipped
(TLS on every connection: Galera client port, replication; the firewall on) and once with
its `tls:` section removed (the baseline, measured in the same run, same firewall). On
each it runs `kgt check verify --through vip` (the Jepsen-style loop whose locking
operation is SELECT … FOR UPDATE on the region's and the shared row, two UPDATEs, COMMIT,
through the region's VIP and HAProxy to the writer) and reads its commit latency per
region. It prints p50 and p95 per region and the TLS / plain ratio. Goal: ≤ 1.15.

    sudo .venv/bin/python benchmarks/tls_overhead.py [--duration 30s] [--kgt .venv/bin/kgt]

Needs root and `bash docker/engine.sh` first; it takes down any running example lab and
leaves none behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.topologies import replace_tls  # noqa: E402

EXAMPLE = ROOT / "topology" / "example.yaml"
GOAL = 1.15


def run(kgt: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kgt), *args], capture_output=True, text=True, check=False, timeout=timeout)


def variant(directory: Path, tls: bool) -> Path:
    """The example in its own folder (its own secrets and PKI), with or without its `tls:` section."""
    directory.mkdir(parents=True)
    text = EXAMPLE.read_text()
    if not tls:
        text = replace_tls(text)
    path = directory / "example.yaml"
    path.write_text(text)
    return path


def measure(kgt: Path, topology: Path, lab_dir: Path, duration: str) -> dict[str, Any]:
    """Boot the lab, run verify through the VIPs, take the lab down; verify's JSON."""
    up = run(kgt, "lab", "up", str(topology), "--lab-dir", str(lab_dir))
    try:
        if up.returncode != 0:
            raise SystemExit(f"kgt lab up {topology} failed:\n{up.stdout[-2000:]}{up.stderr[-2000:]}")
        done = run(
            kgt, "check", "verify", str(topology), "--through", "vip", "--duration", duration, "--format", "json"
        )
        if done.returncode != 0:
            raise SystemExit(
                f"kgt check verify failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        data: dict[str, Any] = json.loads(done.stdout)
        return data
    finally:
        run(kgt, "lab", "down", "--lab-dir", str(lab_dir))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="30s", help="verify's duration on each lab")
    parser.add_argument("--kgt", type=Path, default=Path(sys.executable).parent / "kgt", help="the console script")
    args = parser.parse_args()
    if not args.kgt.is_file():
        raise SystemExit(f"{args.kgt}: no kgt console script (install the package in a venv: pip install -e .)")
    work = Path(tempfile.mkdtemp(prefix="kgt-bench-tls-"))
    try:
        results = {}
        for name, tls in (("plain", False), ("tls", True)):
            topology = variant(work / name, tls)
            results[name] = measure(args.kgt, topology, work / f"{name}-lab", args.duration)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"locking operation (kgt check verify --through vip, {args.duration} per lab), commit latency in ms")
    print(f"{'region':8} {'plain p50':>10} {'tls p50':>10} {'ratio':>6} {'plain p95':>10} {'tls p95':>10} {'ratio':>6}")
    worst = 0.0
    for region in results["plain"]["regions"]:
        plain = results["plain"]["regions"][region]["commit_latency"]
        secure = results["tls"]["regions"][region]["commit_latency"]
        r50, r95 = secure["p50"] / plain["p50"], secure["p95"] / plain["p95"]
        worst = max(worst, r50)
        print(
            f"{region:8} {plain['p50'] * 1000:10.2f} {secure['p50'] * 1000:10.2f} {r50:6.2f} "
            f"{plain['p95'] * 1000:10.2f} {secure['p95'] * 1000:10.2f} {r95:6.2f}"
        )
    verdict = "met" if worst <= GOAL else "NOT met"
    print(f"worst p50 ratio {worst:.2f} (goal <= {GOAL}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
