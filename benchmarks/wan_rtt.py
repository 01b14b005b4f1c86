#!/usr/bin/env python3
"""Benchmark: TCP-connect RTT through the userspace WAN router (needs root).

Builds the network-namespace lab of tests/integration/test_wanrouter_netns.py
(hosts A and B in two regions, router R, all on one bridge in its own
namespace), then prints the median connect RTT over N connects for:

* baseline: A -> B directly on the shared L2 (router bypassed),
* via the router with 0 ms and with 25 ms one-way delay,

with the ratio to the baseline, and tears everything down.

    python3 benchmarks/wan_rtt.py [--count 50] [--delay-ms 25]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _load_lab_module() -> ModuleType:
    path = ROOT / "tests" / "integration" / "test_wanrouter_netns.py"
    spec = importlib.util.spec_from_file_location("_kgt_wan_netns_lab", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(samples: list[float | None]) -> tuple[float, float, float, int]:
    ok = sorted(s * 1000.0 for s in samples if s is not None)
    if not ok:
        return (float("nan"), float("nan"), float("nan"), len(samples))
    p90 = ok[min(len(ok) - 1, int(len(ok) * 0.9))]
    return (statistics.median(ok), ok[0], p90, len(samples) - len(ok))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=50, help="connects per case")
    parser.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay")
    args = parser.parse_args(argv)

    labmod = _load_lab_module()
    reason = labmod.netns_usable()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="kgt-wan-bench-") as tmp:
        lab = labmod.NetnsLab(Path(tmp), tag=f"bench{labmod.os.getpid()}")
        try:
            lab.build()
            lab.start_listener()
            lab.connect_samples(5)  # warm up ARP / python
            lab.route_via_router(False)
            results: list[tuple[str, list[float | None]]] = []
            results.append(("direct (no router)", [r for _, r in lab.connect_samples(args.count)]))
            lab.route_via_router(True)
            lab.start_router([{"between": None, "delay_ms": 0.0}])
            lab.connect_samples(3)
            results.append(("router, delay 0", [r for _, r in lab.connect_samples(args.count)]))
            lab.set_rules([{"between": None, "delay_ms": args.delay_ms}])
            name = f"router, delay {args.delay_ms:g} ms one-way"
            results.append((name, [r for _, r in lab.connect_samples(args.count)]))
        finally:
            lab.destroy()

    base = _summary(results[0][1])[0]
    print(f"TCP connect RTT A->B, {args.count} connects per case")
    print(f"{'case':<34} {'median ms':>10} {'min ms':>8} {'p90 ms':>8} {'fail':>5} {'x base':>8}")
    for name, samples in results:
        med, lo, p90, fail = _summary(samples)
        print(f"{name:<34} {med:>10.3f} {lo:>8.3f} {p90:>8.3f} {fail:>5} {med / base:>8.2f}")
    med0 = _summary(results[1][1])[0]
    med_d = _summary(results[2][1])[0]
    print(f"router overhead at 0 ms: {med0 - base:+.3f} ms")
    print(f"delay case minus 2x{args.delay_ms:g} ms: {med_d - 2 * args.delay_ms:+.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
