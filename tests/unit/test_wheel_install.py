"""The README's set-up, as far as a test can take it: build the wheel, install it, render the example.

`pip install .` builds a wheel; this builds that wheel, installs it (without dependencies,
which the test environment has) into an empty directory and runs `kgt render` from
elsewhere, so the templates must come from the wheel (`toolkit/templates`), not from the
checkout. What it cannot show: the apt-get and venv steps on a pristine Debian 12.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_installed_wheel_renders_the_example(tmp_path: Path) -> None:
    wheels, target, out = tmp_path / "wheels", tmp_path / "site", tmp_path / "out"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True, timeout=300)
    (wheel,) = wheels.glob("keystone_galera_toolkit-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    topology = tmp_path / "example.yaml"
    topology.write_text((ROOT / "topology" / "example.yaml").read_text())
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, toolkit.cli; sys.exit(toolkit.cli.main())",
            "render",
            str(topology),
            "-o",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import toolkit; print(toolkit.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(target)), "rendered with the checkout, not the installed wheel"
    assert (out / "r1-db1" / "etc" / "mysql" / "mariadb.conf.d" / "60-galera.cnf").exists()
    assert (out / "r1-proxy1" / "etc" / "haproxy" / "haproxy.cfg").exists()
