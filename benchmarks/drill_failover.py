#!/usr/bin/env python3
"""Benchmark: measured failover gaps of `kgt drill` against the bounds the configuration sets.

Runs, on a running lab (needs root and Docker; take `flock /tmp/kgt-lab.lock` on a shared lab):

* keystone-loss REGION: the Keystone gap through the region's VIP vs the rendered HAProxy
  detection bound (inter × fall);
* proxy-loss REGION (graceful stop) and proxy-loss --kill: the VIP move vs the VRRP
  master-down interval (3 × advert_int + skew; goal 1.5 s), and the client-visible gaps;

each --repeat times (`--case 'proxy-loss --kill' --repeat 5`: five kills in a row), and prints
one row per run and the median and worst per case. Exit 1 if a drill did not pass.

    .venv/bin/python benchmarks/drill_failover.py --lab-dir /tmp/kgt-dev-lab [--region r1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TIMING = ["--duration", "26s", "--fault-at", "6s", "--heal-after", "10s"]


def kgt() -> str:
    """The console script of the interpreter's environment (run this with the venv's python)."""
    path = Path(sys.executable).parent / "kgt"
    if not path.exists():
        raise SystemExit(f"no kgt beside {sys.executable}: run this with the venv's python")
    return str(path)


def run_drill(lab_dir: Path, name: str, *args: str) -> tuple[int, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="kgt-bench-") as tmp:
        done = subprocess.run(
            [
                kgt(),
                "drill",
                name,
                *args,
                *TIMING,
                "--lab-dir",
                str(lab_dir),
                "--report",
                tmp,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        report = Path(tmp) / "report.json"
        data = json.loads(report.read_text()) if report.exists() else {}
    if not data:
        sys.stderr.write(done.stdout[-1500:] + done.stderr[-1500:])
    return done.returncode, data


CASES = {"keystone-loss": [], "proxy-loss": [], "proxy-loss --kill": ["--kill"]}
VIP_MOVE = 1.5  # s: the goal for a VIP move (tests/integration/test_drills_lab.py holds the drill to it)


def token_gap(region: dict[str, Any]) -> float:
    """The longest Keystone gap through the region's endpoint: tokens issued or validated."""
    return max((region.get(k) or {}).get("max_gap") or 0.0 for k in ("tokens", "validations"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lab-dir", type=Path, default=Path("/tmp/kgt-dev-lab"))
    parser.add_argument("--region", default="r1")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--case", action="append", choices=CASES, help="only these cases (default: all)")
    args = parser.parse_args(argv)
    cases = [
        (label, ["--region", args.region, *extra]) for label, extra in CASES.items() if label in (args.case or CASES)
    ]
    print(f"{'case':<18} {'verdict':<8} {'measured':>9} {'bound':>7}  what")
    results: dict[str, list[float]] = {}
    worst = 0
    for _ in range(args.repeat):
        for label, extra in cases:
            code, data = run_drill(args.lab_dir, label.split()[0], *extra)
            worst = max(worst, code)
            if not data:
                print(f"{label:<18} {'error':<8}")
                continue
            bounds, m = data["bounds"], data["measurements"]
            region = m["regions"][args.region]
            if label == "keystone-loss":
                measured = token_gap(region)
                bound = bounds["haproxy_detection"]
                what = (
                    f"Keystone gap via {args.region} VIP vs inter × fall (test bound 1.2 × = {1.2 * bound:.1f}s); "
                    f"HAProxy marked down after {m['detect']['haproxy'] or float('nan'):.2f}s"
                )
            else:
                move = m["vip_move"] or {}
                measured = move.get("seconds", float("nan"))
                bound = bounds["vrrp_failover"]
                what = (
                    f"VIP move vs 3 × advert_int + skew (goal {VIP_MOVE:g}s); gaps writes "
                    f"{region['writes']['max_gap'] or 0:.1f}s tokens {token_gap(region):.1f}s"
                )
            results.setdefault(label, []).append(measured)
            print(f"{label:<18} {data['verdict']:<8} {measured:>8.2f}s {bound:>6.2f}s  {what}")
    for label, values in results.items():
        print(f"{label:<18} median {statistics.median(values):.2f}s, worst {max(values):.2f}s over {len(values)} runs")
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
