"""The seed design's shape on the lab: a region-partition drill on topology/catalyst-lab.yaml.

Three regions × three Galera nodes, a Keystone API host per region separate from the
database nodes, two proxies per region (18 hosts). The cut-off region must go non-Primary
on all three of its nodes, refuse writes, and keep issuing and validating tokens read-only
through its own nodes (the write listener's fallback); the others go on. Only one lab can
exist at a time: the test is marked own_lab (the shared example lab is taken down first)
and boots its own lab (conftest.own_lab), always torn down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, drill_on, own_lab

pytestmark = pytest.mark.integration

TOPOLOGY = ROOT / "topology" / "catalyst-lab.yaml"
CUT = "nz-hlz"


@pytest.mark.own_lab
def test_catalyst_shaped_lab_partition_keeps_the_cut_off_region_serving_tokens_read_only(tmp_path: Path) -> None:
    report = tmp_path / "report"
    with own_lab(TOPOLOGY, tmp_path, timeout=1200) as lab_dir:
        done, data, failed = drill_on(
            lab_dir,
            report,
            "drill",
            "region-partition",
            "--region",
            CUT,
            "--duration",
            "32s",
            "--fault-at",
            "8s",
            timeout=600,
        )
        assert done.returncode == 0, f"{done.stdout[-1500:]}\n{failed}"
        line = done.stdout.strip().splitlines()[-1]
        assert line.startswith("PASS: ") and f"{CUT} read-only from" in line
        nodes = data["observed"]["nodes"]
        assert len(nodes) == 9 and nodes == data["prediction"]["nodes"]
        assert {n for n, s in nodes.items() if s == "non-Primary"} == {f"{CUT}-db{i}" for i in (1, 2, 3)}
        served = next(e for e in data["expectations"] if e["name"] == "tokens served read-only")
        assert (served["region"], served["ok"]) == (CUT, True), served
        read_only = data["measurements"]["regions"][CUT]["read_only"]
        assert read_only["tokens"]["attempts"] >= 10 and read_only["tokens"]["availability"] >= 0.95
        assert read_only["validations"]["attempts"] >= 10 and read_only["validations"]["availability"] >= 0.95
        assert any(e["name"] == "writes rejected" and e["region"] == CUT and e["ok"] for e in data["expectations"])
        assert data["measurements"]["lost_writes"] == 0 and data["measurements"]["anomalies"] == []
