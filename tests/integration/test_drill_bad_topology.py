"""A drill on a deliberately bad topology: two regions of equal weight, cut apart.

`kgt analyze` predicts that neither side keeps Primary; the drill must observe exactly
that, pass (the prediction held) and flag the topology. The lab of tests/data/two-regions.yaml
uses the example lab's addresses and container names, and only one lab can exist at a
time: the test is marked own_lab, which takes the example lab down when the session booted
it (KGT_LAB_REUSE unset) and skips when a developer's reused lab is up. Its own lab is
brought up and always torn down by conftest.own_lab.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, drill_on, own_lab

pytestmark = pytest.mark.integration

TOPOLOGY = ROOT / "tests" / "data" / "two-regions.yaml"


@pytest.mark.own_lab
def test_two_equal_regions_lose_primary_on_both_sides_as_predicted(tmp_path: Path) -> None:
    report = tmp_path / "report"
    with own_lab(TOPOLOGY, tmp_path, timeout=900) as lab_dir:
        done, data, failed = drill_on(
            lab_dir,
            report,
            "drill",
            "region-partition",
            "--region",
            "r2",
            "--duration",
            "32s",
            "--fault-at",
            "8s",
            "--heal-after",
            "14s",
            timeout=400,
        )
        assert done.returncode == 0, f"{done.stdout[-1500:]}\n{failed}"
        line = done.stdout.strip().splitlines()[-1]
        assert line.startswith("PASS: ") and "NO PRIMARY" in line and "topology flagged" in line
        assert data["prediction"]["survives"] is False
        assert (
            data["prediction"]["nodes"]
            == data["observed"]["nodes"]
            == {"r1-db1": "non-Primary", "r2-db1": "non-Primary"}
        )
        assert data["topology"]["flagged"] is True
        assert any("garbd" in fix for fix in data["topology"]["fixes"])
        for region in ("r1", "r2"):
            assert data["measurements"]["regions"][region]["writes"]["availability"] < 0.5
            assert any(
                e["name"] == "writes rejected" and e["region"] == region and e["ok"] for e in data["expectations"]
            )
        assert data["measurements"]["lost_writes"] == 0
