"""`kgt drill all` on a fresh lab: boots the example, runs the standard set in order, tears it down.

Marked own_lab (only one lab can exist at a time: the shared one is taken down first), with the short timing
of the drill tests (fault at 8 s) and the default fault windows (14 s, 21.5 s for the
region partition, whose read-only region is watched serving): ≈ 5 min. Each drill is judged by its
own checker; here the command's contract is checked: the order, one report per drill,
summary.json, the exit code, and that the lab it booted is gone afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TOPOLOGY, kgt, lab_running
from toolkit.drills.faults import STANDARD

pytestmark = pytest.mark.integration


@pytest.mark.own_lab("`drill all` would use it instead of booting a fresh one")
def test_drill_all_boots_a_fresh_lab_runs_the_standard_set_and_removes_the_lab(tmp_path: Path) -> None:
    lab_dir, report = tmp_path / "lab", tmp_path / "all"
    try:
        done = kgt(
            "drill",
            "all",
            str(TOPOLOGY),
            "--lab-dir",
            str(lab_dir),
            "--report",
            str(report),
            "--duration",
            "32s",
            "--fault-at",
            "8s",
            timeout=1500,
        )  # default fault windows
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-2000:])
        lines = done.stdout.strip().splitlines()
        assert lines[0].startswith(f"booting a fresh lab from {TOPOLOGY}")
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-1500:]}"
        n = len(STANDARD)
        assert lines[-1] == f"PASS: {n} drills: {n} pass, 0 fail, 0 unknown; reports in {report}"
        summary = json.loads((report / "summary.json").read_text())
        assert (summary["schema"], summary["verdict"], summary["code"]) == ("kgt.drill.all/1", "pass", 0)
        assert [d["drill"] for d in summary["drills"]] == list(STANDARD)
        for entry in summary["drills"]:
            data = json.loads(Path(entry["report"]).read_text())
            assert (data["drill"], data["verdict"]) == (entry["drill"], "pass")
            assert data["measurements"]["lost_writes"] == 0
            assert (Path(entry["report"]).parent / "report.html").exists()
        assert not lab_running(), "drill all left the lab it booted running"
    finally:
        if lab_running():
            kgt("lab", "down", "--lab-dir", str(lab_dir), timeout=300)
