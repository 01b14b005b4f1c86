"""Cold `kgt lab up` of the example topology with the image already built, split by step.

Not a test: it prints figures. The baseline, measured in the same run, is the time
Docker alone needs to create and start the same containers (the `containers` step), so
the ratio says how much of the boot is the services themselves. Goal: every service
ready within 90 s on 2 cores. Needs root and `bash docker/engine.sh` first; it tears
down any running example lab and leaves none behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kgt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=900
    )


def main() -> int:
    from toolkit.lab.docker import remove_project

    remove_project("kgt-kgt-example")
    with tempfile.TemporaryDirectory(prefix="kgt-bench-lab-") as lab_dir:
        started = time.monotonic()
        up = kgt("lab", "up", str(ROOT / "topology" / "example.yaml"), "--lab-dir", lab_dir)
        wall = time.monotonic() - started
        try:
            if up.returncode != 0:
                print(up.stdout, up.stderr, file=sys.stderr)
                return 1
            timings = dict(json.loads((Path(lab_dir) / "lab.json").read_text())["timings"])
        finally:
            kgt("lab", "down", "--lab-dir", lab_dir)
    print(
        f"kgt lab up (example, 9 hosts + WAN router), wall {wall:.1f}s; goal < 90s: {'met' if wall < 90 else 'MISSED'}"
    )
    for step, seconds in timings.items():
        if step != "total":
            print(f"  {step:<24} {seconds:6.1f}s")
    baseline = timings.get("containers", 0.0)
    if baseline:
        print(
            f"baseline (docker creating and starting the containers): {baseline:.1f}s; "
            f"whole boot = {wall / baseline:.1f}x the baseline"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
