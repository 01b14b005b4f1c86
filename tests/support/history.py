"""Assertions read straight from a verify history file (JSON lines), shared by the checker tests."""

from __future__ import annotations

import json
from pathlib import Path


def assert_no_ok_write_while_non_primary(history: Path, region: str) -> None:
    """While `region` reported non-Primary, none of its increments was acknowledged."""
    ops = [json.loads(line) for line in history.read_text().splitlines()]
    non_primary = [
        o["time"]
        for o in ops
        if o["process"] == region and o["f"] == "status" and o["type"] == "ok" and o["value"]["status"] != "Primary"
    ]
    assert non_primary, f"{region} never reported non-Primary"
    oks = [o for o in ops if o["process"] == region and o["f"] == "incr" and o["type"] == "ok"]
    assert not [o for o in oks if non_primary[0] < o["time"] < non_primary[-1]]
