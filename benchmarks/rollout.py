#!/usr/bin/env python3
"""Benchmark: how fast a published change reaches a running lab through the agents, against baselines of the same run.

On a running example lab (its agents up: `kgt lab up` starts them), through the venv's `kgt`:

* HAProxy-only change: from the start of `kgt publish` until every proxy runs a new HAProxy
  worker with the new config (goal ≤ 2 s), against the same detection of a reload sent to
  every proxy directly (`kill -USR2` through `docker exec`): what the rollout adds;
* rolling Galera restart (`max_connections`): from the start of `kgt publish` until `kgt
  rollout wait` returns, against the sum of each node's own restart and rejoin (stop,
  start, Synced: through the lab's service manager, one node after the other) measured in
  the same run (goal ≤ 1.2×).

The lab is left on the example's own generation. Needs root and Docker.

    .venv/bin/python benchmarks/rollout.py --lab-dir /tmp/kgt-dev-lab [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.topologies import example_variant  # noqa: E402
from toolkit.lab.host import LabHost  # noqa: E402
from toolkit.lab.services import LabServices  # noqa: E402
from toolkit.services import REJOIN  # noqa: E402
from toolkit.topology import load  # noqa: E402

TOPOLOGY = ROOT / "topology" / "example.yaml"


def kgt() -> str:
    """The console script of the interpreter's environment (run this with the venv's python)."""
    path = Path(sys.executable).parent / "kgt"
    if not path.exists():
        raise SystemExit(f"no kgt beside {sys.executable}: run this with the venv's python")
    return str(path)


def run(*args: str, timeout: float = 600) -> None:
    done = subprocess.run([kgt(), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"kgt {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-500:]}")


def workers(host: str) -> str:
    return LabHost(host).run("pgrep -P $(cat /run/kgt/haproxy.pid) | sort | tr '\\n' ' '", timeout=15).stdout


def until_reloaded(proxies: list[str], before: dict[str, str], marker: str | None, started: float) -> float:
    """Seconds from `started` until every proxy has new workers (and `marker` in its config)."""
    left = set(proxies)
    while left and time.monotonic() - started < 60:
        for p in sorted(left):
            fresh = workers(p) != before[p]
            has = marker is None or LabHost(p).run(f"grep -qF '{marker}' /etc/haproxy/haproxy.cfg").ok
            if fresh and has:
                left.discard(p)
        time.sleep(0.05)
    if left:
        raise SystemExit(f"not reloaded within 60 s: {sorted(left)}")
    return time.monotonic() - started


def haproxy_case(directory: Path, proxies: list[str], repeat: int) -> tuple[list[float], list[float]]:
    published, direct = [], []
    for i in range(repeat):
        before = {p: workers(p) for p in proxies}
        started = time.monotonic()
        for p in proxies:
            LabHost(p).run("kill -USR2 $(cat /run/kgt/haproxy.pid)", timeout=15)
        direct.append(until_reloaded(proxies, before, None, started))
        seconds = f"{3 + i % 2}s"
        changed = example_variant(directory, "defaults:\n", f"defaults:\n  haproxy:\n    timeout_connect: {seconds}\n")
        before = {p: workers(p) for p in proxies}
        started = time.monotonic()
        run("publish", str(changed))
        published.append(until_reloaded(proxies, before, f"timeout connect {seconds}", started))
        run("rollout", "wait", str(changed), "--timeout", "60s")
    return published, direct


def galera_case(directory: Path) -> tuple[float, float]:
    topology = load(TOPOLOGY)
    alone = 0.0
    for host in topology.galera_nodes:
        m = LabServices(topology, host)
        started = time.monotonic()
        m.restart("mariadb")
        m.wait_healthy("mariadb", REJOIN)
        alone += time.monotonic() - started
    changed = example_variant(directory, "    max_connections: 200\n", "    max_connections: 160\n")
    started = time.monotonic()
    run("publish", str(changed))
    run("rollout", "wait", str(changed), "--timeout", "600s", timeout=700)
    return time.monotonic() - started, alone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, required=True, help="the running lab's directory (unused: one lab)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    topology = load(TOPOLOGY)
    proxies = [h.name for h in topology.with_role("haproxy")]
    with tempfile.TemporaryDirectory(prefix="kgt-bench-") as tmp:
        try:
            published, direct = haproxy_case(Path(tmp), proxies, args.repeat)
            p, d = statistics.median(published), statistics.median(direct)
            print(
                f"haproxy change, publish → {len(proxies)} proxies reloaded: median {p:.2f}s (runs "
                f"{', '.join(f'{x:.2f}' for x in published)}); a direct USR2 to each, seen the same way: "
                f"{d:.2f}s; ratio {p / d:.1f}×; goal ≤ 2 s {'met' if p <= 2 else 'NOT met'}"
            )
            total, alone = galera_case(Path(tmp))
            ratio = total / alone
            print(
                f"rolling Galera restart ({len(topology.galera_nodes)} nodes) through the agents: {total:.1f}s; "
                f"the same restarts one after another by hand: {alone:.1f}s; ratio {ratio:.2f}×; "
                f"goal ≤ 1.2× {'met' if ratio <= 1.2 else 'NOT met'}"
            )
        finally:
            run("publish", str(TOPOLOGY))
            run("rollout", "wait", str(TOPOLOGY), "--timeout", "600s", timeout=700)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
