#!/usr/bin/env python3
"""Benchmark: `kgt analyze --depth 2` and `--sequence` on the 30-region, 270-host topology (not a test).

Runs the installed console script (`kgt` beside the interpreter running this script: run it
with the venv's python), as a user does, on the topology of benchmarks/render_scale.py,
and prints the medians of `kgt validate` (load and validate only: the baseline, measured
in the same run), `kgt analyze` (single failures), `--depth 2` and `--sequence`, with the
ratio of each to the baseline. The goal: `--depth 2` within 2 s.

    .venv/bin/python benchmarks/analyze_depth.py [--regions 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render_scale import scale_yaml

GOAL = 2.0


def kgt() -> str:
    """The console script of the interpreter's environment."""
    path = Path(sys.executable).parent / "kgt"
    if not path.exists():
        raise SystemExit(f"no kgt beside {sys.executable}: run this with the venv's python")
    return str(path)


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kgt-bench-") as tmp:
        path = Path(tmp) / "scale.yaml"
        path.write_text(scale_yaml(args.regions))
        variants = {
            "validate (baseline)": ["validate"],
            "analyze": ["analyze"],
            "analyze --depth 2": ["analyze", "--depth", "2"],
            "analyze --sequence": ["analyze", "--sequence"],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):  # interleaved, so load on the machine hits every variant alike
            for name, extra in variants.items():
                times[name].append(timed([kgt(), extra[0], str(path), *extra[1:]]))
    base = statistics.median(times["validate (baseline)"])
    print(f"{args.regions} regions, {args.regions * 9} hosts, {args.runs} runs each (medians)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  kgt {name:<22} {median:7.3f} s  {median / base:5.2f}× validate")
    depth = statistics.median(times["analyze --depth 2"])
    print(f"--depth 2: {depth:.2f} s ({'within' if depth <= GOAL else 'OVER'} the {GOAL:g} s goal)")
    return 0 if depth <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
