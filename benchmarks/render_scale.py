#!/usr/bin/env python3
"""Benchmark: load, validate and render a 30-region, 270-host topology (not a test).

Per region: 3 Galera nodes, 3 Keystone+memcached hosts, 2 HAProxy+keepalived proxies
sharing 2 VIPs, and 1 DNS server: 9 hosts. The same run renders the 9-host example
(topology/example.yaml) as the baseline and prints the cost per host of both and
their ratio, for the in-memory render and for a render written to a temporary
directory. The goal is under 1 s for the large topology.

    python3 benchmarks/render_scale.py [--regions 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit import secretstore  # noqa: E402 - after the path set-up above
from toolkit.render import engine, output  # noqa: E402
from toolkit.topology import load  # noqa: E402
from toolkit.topology.model import Topology  # noqa: E402

EXAMPLE = ROOT / "topology" / "example.yaml"
FAKE_SECRETS = {spec.name: f"bench-{spec.name}"[:40] for spec in secretstore.SPECS}


def scale_yaml(regions: int) -> str:
    """A topology of `regions` regions of 9 hosts each, as YAML text."""
    lines = [
        "name: kgt-scale",
        "domain: scale.example",
        "wan: {rtt: 40ms}",
        "defaults: {cores: 4}",
        "regions:",
    ]
    roles = ["galera"] * 3 + ["keystone, memcached"] * 3 + ["haproxy, keepalived"] * 2 + ["dns"]
    for r in range(1, regions + 1):
        net = f"10.{100 + r // 250}.{r % 250}"
        lines += [
            f"  - name: r{r}",
            f"    subnet: {net}.0/24",
            "    vips:",
            f"      - {{name: r{r}-vip1, address: {net}.100}}",
            f"      - {{name: r{r}-vip2, address: {net}.101}}",
            "    hosts:",
        ]
        for h, host_roles in enumerate(roles, start=1):
            lines.append(f"      - {{name: r{r}-h{h}, address: {net}.{10 + h}, roles: [{host_roles}]}}")
    return "\n".join(lines) + "\n"


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The fastest of `repeat` wall-clock runs of `fn`, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(path: Path, repeat: int, workdir: Path) -> dict[str, float]:
    """Seconds to load+validate, render in memory, and render to a directory."""
    topology: Topology = load(path)
    secrets = secretstore.Secrets(path, dict(FAKE_SECRETS))
    files = engine.render(topology, secrets)
    out = workdir / f"out-{path.stem}"
    return {
        "hosts": len(topology.hosts),
        "files": len(files),
        "load": best_of(repeat, lambda: load(path)),
        "render": best_of(repeat, lambda: engine.render(topology, secrets)),
        "write": best_of(repeat, lambda: output.write(topology, engine.render(topology, secrets), out)),
        "total": best_of(repeat, lambda: _end_to_end(path, secrets, out)),
    }


def _end_to_end(path: Path, secrets: secretstore.Secrets, out: Path) -> None:
    """What `kgt render` does after start-up: load and validate, render, write."""
    topology = load(path)
    output.write(topology, engine.render(topology, secrets), out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the fastest is shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kgt-bench-") as tmp:
        workdir = Path(tmp)
        big = workdir / "scale.yaml"
        big.write_text(scale_yaml(args.regions))
        base = measure(EXAMPLE, args.repeat, workdir)
        large = measure(big, args.repeat, workdir)
    print(f"{'':<34}{'example':>12}{'scale':>12}{'ratio/host':>12}")
    print(f"{'hosts':<34}{base['hosts']:>12.0f}{large['hosts']:>12.0f}")
    print(f"{'files':<34}{base['files']:>12.0f}{large['files']:>12.0f}")
    for key, label in (
        ("load", "load + validate (s)"),
        ("render", "render in memory (s)"),
        ("write", "render + write to temp dir (s)"),
        ("total", "load + render + write (s)"),
    ):
        per_base = base[key] / base["hosts"]
        per_large = large[key] / large["hosts"]
        print(f"{label:<34}{base[key]:>12.4f}{large[key]:>12.4f}{per_large / per_base:>12.2f}")
        print(f"{'  per host (ms)':<34}{per_base * 1000:>12.3f}{per_large * 1000:>12.3f}")
    verdict = "under" if large["total"] < 1.0 else "OVER"
    print(f"{large['hosts']:.0f}-host load + render + write: {large['total']:.3f} s ({verdict} the 1 s goal)")
    return 0 if large["total"] < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
