"""report.json's schema, the self-contained report.html, and the interrupt handler of the runner."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from tests.unit.test_drills_checker import drill_history
from toolkit.drills import checker, report
from toolkit.drills.runner import Interrupts


def test_report_json_has_the_documented_keys(tmp_path: Path) -> None:
    result = checker.check(drill_history())
    report.write(tmp_path, result)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["schema"] == "kgt.drill.report/1"
    assert set(data) >= {
        "drill",
        "verdict",
        "code",
        "summary",
        "line",
        "fault",
        "topology",
        "timeline",
        "prediction",
        "observed",
        "bounds",
        "measurements",
        "expectations",
        "verify",
        "files",
    }
    assert data["verdict"] == "pass" and data["code"] == 0
    assert set(data["measurements"]) >= {
        "detect",
        "vip_move",
        "heal",
        "regions",
        "acknowledged_writes",
        "lost_writes",
        "anomalies",
    }
    assert set(data["measurements"]["regions"]["r1"]) == {"writes", "tokens", "validations"}
    # The cut-off region (predicted read-only) also reports how it served read-only.
    assert set(data["measurements"]["regions"]["r3"]) == {"writes", "tokens", "validations", "dirty_reads", "read_only"}
    assert set(data["measurements"]["regions"]["r3"]["read_only"]) == {
        "since",
        "until",
        "non_primary_at",
        "tokens",
        "validations",
    }
    assert data["bounds"]["rtt"] == 0.0
    assert data["verify"]["schema"] == "kgt.check.verify/1"
    assert data["topology"]["flagged"] is False
    for e in data["expectations"]:
        assert set(e) == {"name", "region", "expected", "observed", "ok"}


def test_report_html_is_self_contained_with_a_timeline(tmp_path: Path) -> None:
    result = checker.check(drill_history())
    report.write(tmp_path, result)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="timeline"' in page
    assert 'class="fault-window"' in page
    assert page.count('class="bin"') > 100
    assert 'class="gap"' in page and "gap 6." in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page), "no external assets"
    assert "<script" not in page


def test_text_report_ends_with_the_verdict_line() -> None:
    result = checker.check(drill_history())
    lines = report.text(result).splitlines()
    assert lines[-1] == result.line()
    assert any(line.startswith("ok") and "prediction held" in line for line in lines)


def test_sigint_becomes_a_flag_and_is_refused_while_healing() -> None:
    said: list[str] = []
    interrupts = Interrupts(said.append)
    with interrupts.installed():
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt without the handler
        assert interrupts.sleep(5) is True  # returns at once
        with interrupts.healing():
            os.kill(os.getpid(), signal.SIGINT)
    assert interrupts.is_set()
    assert "stopping the drill" in said[0] and "healing the fault first" in said[1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
