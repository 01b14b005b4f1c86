"""`kgt drill` against the example lab, run as a user runs it: a subprocess, its exit code, report.json.

Each drill is short (fault at 8 s, healed 12–14 s later) and must pass with no lost
acknowledged write; the measured numbers are checked against the configuration. Every
drill heals its fault and waits until the lab is healthy again, so the tests leave the
shared lab as they found it. Run under `flock /tmp/kgt-lab.lock` when the lab is shared.

The HTML test needs Debian's `chromium` (apt-get install chromium); it decodes the
screenshot with a small pure-Python PNG reader (zlib), no Pillow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, Lab
from toolkit.lab import services
from toolkit.lab.host import LabHost
from toolkit.services import wsrep_status

pytestmark = pytest.mark.integration

SHORT = ["--duration", "32s", "--fault-at", "8s", "--heal-after", "12s"]


Run = subprocess.CompletedProcess[str]


def drill(lab: Lab, name: str, report: Path, *args: str, timeout: float = 300) -> tuple[Run, dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit.cli",
            "drill",
            name,
            *args,
            "--lab-dir",
            str(lab.lab_dir),
            "--report",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    sys.stderr.write(done.stdout[-3000:] + done.stderr[-2000:])
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    return done, data


def assert_passed(done: subprocess.CompletedProcess[str], data: dict[str, Any]) -> None:
    failed = [e for e in data.get("expectations", []) if e["ok"] is not True]
    assert done.returncode == 0, f"exit {done.returncode}: {done.stdout[-1500:]}\n{done.stderr[-800:]}\n{failed}"
    assert done.stdout.strip().splitlines()[-1].startswith("PASS: ")
    assert data["verdict"] == "pass"
    assert data["measurements"]["lost_writes"] == 0
    assert data["measurements"]["acknowledged_writes"] > 50
    assert data["measurements"]["anomalies"] == []


def detection_bound(lab: Lab, region: str) -> float:
    """The rendered HAProxy detection bound (inter × fall) of a region's proxies."""
    return max(h.settings.haproxy.detection_bound for h in lab.topology.region(region).with_role("haproxy"))


def test_region_partition_minority_rejects_writes_majority_goes_on(lab: Lab, tmp_path: Path) -> None:
    # The default fault window (longer than SHORT's): r3 is watched serving read-only.
    done, data = drill(
        lab, "region-partition", tmp_path, "--region", "r3", "--duration", "32s", "--fault-at", "8s", timeout=420
    )
    assert_passed(done, data)
    assert (
        data["prediction"]["nodes"]
        == data["observed"]["nodes"]
        == {"r1-db1": "Primary", "r2-db1": "Primary", "r3-db1": "non-Primary"}
    )
    regions = data["measurements"]["regions"]
    assert regions["r3"]["writes"]["availability"] < 0.5
    assert regions["r3"]["dirty_reads"]["availability"] > 0.9  # wsrep_dirty_reads=ON: the minority still reads
    galera = data["bounds"]["galera_detection"]
    for region in ("r1", "r2"):
        assert regions[region]["writes"]["max_gap"] <= galera + 1
    assert 3 <= data["measurements"]["detect"]["galera"] <= galera
    assert_read_only_served(data, done.stdout, "r3")


def assert_read_only_served(data: dict[str, Any], stdout: str, region: str) -> None:
    """The cut-off region served tokens read-only, as the drill measured and said."""
    served = next(e for e in data["expectations"] if e["name"] == "tokens served read-only")
    assert (served["region"], served["ok"]) == (region, True), served
    read_only = data["measurements"]["regions"][region]["read_only"]
    assert read_only["tokens"]["attempts"] >= 10 and read_only["validations"]["attempts"] >= 10
    assert read_only["tokens"]["availability"] >= 0.95 and read_only["validations"]["availability"] >= 0.95
    assert f"{region} read-only from" in stdout.strip().splitlines()[-1]


def test_region_partition_at_a_50ms_wan_passes_at_that_rtt_and_keeps_the_delay(lab: Lab, tmp_path: Path) -> None:
    from toolkit.lab import network

    assert lab.kgt("lab", "wan", "--rtt", "50ms").returncode == 0
    try:
        done, data = drill(
            lab, "region-partition", tmp_path, "--region", "r3", "--duration", "32s", "--fault-at", "8s", timeout=420
        )
        assert_passed(done, data)
        assert data["bounds"]["rtt"] == 0.05
        assert data["bounds"]["slack"] == pytest.approx(1.0 + 5 * 0.05)
        # The default fault window leaves time to watch r3 serve read-only.
        assert data["timeline"]["heal_at"] - data["timeline"]["fault_at"] > 14
        assert_read_only_served(data, done.stdout, "r3")
        regions = data["measurements"]["regions"]
        for region in ("r1", "r2"):
            assert regions[region]["writes"]["max_gap"] <= data["bounds"]["write_gap"][region]
        sys.stderr.write(
            "region-partition r3 at 50 ms RTT: detect "
            + json.dumps(data["measurements"]["detect"])
            + f"; writes gap r1 {regions['r1']['writes']['max_gap']}s, r2 "
            f"{regions['r2']['writes']['max_gap']}s; r3 read-only from "
            f"{regions['r3']['read_only']['since']}s\n"
        )
        # The drill healed its cut and left the lab's WAN as it found it: 50 ms between regions.
        setting = network.setting()
        assert setting is not None and setting.rtt == 0.05
        rtts = network.tcp_connect_ms("r1-db1", str(lab.topology.host("r3-db1").address), 3306, count=5)
        assert min(rtts) >= 45, rtts
    finally:
        assert lab.kgt("lab", "wan", "--clear").returncode == 0
    assert network.setting() is None


def test_region_loss_survivors_go_on_and_the_region_rejoins_by_ist(lab: Lab, tmp_path: Path) -> None:
    done, data = drill(lab, "region-loss", tmp_path, "--region", "r3", *SHORT, timeout=420)
    assert_passed(done, data)
    assert data["observed"]["nodes"]["r3-db1"] == "down"
    assert data["measurements"]["heal"]["rejoin"]["r3-db1"]["method"] == "IST"
    assert data["measurements"]["regions"]["r3"]["writes"]["first_ok_after_heal"] is not None


def test_keystone_loss_fails_over_within_the_haproxy_detection_bound(lab: Lab, tmp_path: Path) -> None:
    done, data = drill(lab, "keystone-loss", tmp_path, "--region", "r1", *SHORT)
    assert_passed(done, data)
    bound = detection_bound(lab, "r1")
    tokens = data["measurements"]["regions"]["r1"]["tokens"]
    gap = tokens["max_gap"] or 0.0
    sys.stderr.write(f"keystone-loss r1: token gap {gap:.2f}s, bound 1.2 × {bound:g}s\n")
    assert gap <= 1.2 * bound, f"Keystone failover gap through r1's VIP {gap:.2f}s > 1.2 × {bound:g}s"
    assert data["measurements"]["detect"]["haproxy"] is not None


def test_wan_degrade_every_region_goes_on_and_commits_pay_the_round_trip(lab: Lab, tmp_path: Path) -> None:
    done, data = drill(lab, "wan-degrade", tmp_path, "--rtt", "200ms", *SHORT)
    assert_passed(done, data)
    assert set(data["observed"]["nodes"].values()) == {"Primary"}
    # Physics: a Galera commit orders its write set across the segments, so an increment
    # acknowledged while the WAN was degraded took at least one round trip.
    timeline = data["timeline"]
    start, end = timeline["fault_injected"] + 0.5, timeline["heal_at"]
    ops = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    commits = sorted(
        o["latency"]
        for o in ops
        if o["f"] == "incr"
        and o["type"] == "ok"
        and o["latency"] is not None
        and start <= o["time"] - o["latency"]
        and o["time"] <= end
    )
    assert commits, "no increment acknowledged while the WAN was degraded"
    assert commits[len(commits) // 2] >= 0.2 * 0.9, f"commit p50 {commits[len(commits) // 2]:.3f}s under the 200 ms RTT"


def _poll_vip(host: str, vip: str, stop: threading.Event, seen: list[datetime]) -> None:
    h = LabHost(host)
    while not stop.is_set() and not seen:
        if vip in services.held_vips(h):
            seen.append(datetime.now().astimezone())
            return
        time.sleep(0.05)


VIP_MOVE = 1.5  # s: VRRPv3 with 0.3 s adverts (master-down interval ≈ 1.04 s) and the slack to see it


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_proxy_loss_moves_the_vip_within_1_5s(lab: Lab, tmp_path: Path, how: str) -> None:
    """A graceful stop (keepalived says priority 0) or kill -9 (its adverts just stop): either way 1.5 s."""
    region = lab.topology.region("r2")
    vip = region.vips[0]
    other = next(h.name for h in region.with_role("keepalived") if h.name != vip.master)
    stop, seen = threading.Event(), []  # type: ignore[var-annotated]
    poller = threading.Thread(target=_poll_vip, args=(other, str(vip.address), stop, seen), daemon=True)
    poller.start()  # measured directly: `ip addr` on the other proxy
    try:
        kill = ["--kill"] if how == "kill" else []
        done, data = drill(lab, "proxy-loss", tmp_path, "--region", "r2", *kill, *SHORT)
    finally:
        stop.set()
        poller.join(5)
    assert_passed(done, data)
    # From the moment the stop command returned (the proxy is gone), as the drill measures it.
    t = data["timeline"]
    fault = datetime.fromisoformat(t["fault_wall"]) + timedelta(seconds=t["fault_injected"] - t["fault_at"])
    assert seen, f"{vip.address} never appeared on {other}"
    moved = max(0.0, (seen[0] - fault).total_seconds())
    sys.stderr.write(
        f"proxy-loss r2 ({how}): VIP on {other} {moved:.2f}s after the fault (drill: "
        f"{data['measurements']['vip_move']['seconds']:.2f}s)\n"
    )
    assert moved <= VIP_MOVE
    assert data["measurements"]["vip_move"]["to"] == other
    assert data["measurements"]["vip_move"]["seconds"] <= VIP_MOVE
    for v in lab.topology.vips:  # healed: every VIP back on its MASTER alone
        assert str(v.address) in services.held_vips(lab.host(v.master))


def test_node_loss_rejoins_by_ist_not_sst(lab: Lab, tmp_path: Path) -> None:
    done, data = drill(lab, "node-loss", tmp_path, "--host", "r3-db1", *SHORT)
    assert_passed(done, data)
    assert data["measurements"]["heal"]["rejoin"]["r3-db1"]["method"] == "IST"
    log = (
        lab.host("r3-db1")
        .run('awk \'/^== start /{buf=""} {buf=buf $0 "\\n"} END{printf "%s", buf}\' /var/log/kgt/mariadb.log')
        .stdout
    )
    assert "IST completed on joiner" in log or "IST received" in log
    assert "SST completed on joiner" not in log
    assert "00000000-0000-0000-0000-000000000000 f: 0" not in log


# --- the HTML report in a real browser ------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit PNG (colour types 2 and 6), filters undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = depth = colour = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def test_html_report_renders_its_timeline_in_headless_chromium(lab: Lab, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    report = tmp_path / "report"
    done, data = drill(
        lab, "wan-degrade", report, "--rtt", "200ms", "--duration", "20s", "--fault-at", "4s", "--heal-after", "8s"
    )
    assert_passed(done, data)
    page = (report / "report.html").read_text()
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="timeline"' in page
    assert 'class="fault-window"' in page and page.count('class="bin"') > 50
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={shot}",
            "--window-size=1400,1000",
            (report / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 1000)
    bpp = len(rows[0]) // width
    # The timeline band (below the title, legend): count green pixels of the ok bins, and non-white ones.
    green = non_white = 0
    for row in rows[150:600]:
        for x in range(0, len(row), bpp):
            r, g, b = row[x], row[x + 1], row[x + 2]
            if (r, g, b) != (255, 255, 255):
                non_white += 1
            if g > 120 and r < 90 and b < 110:
                green += 1
    assert non_white > 50_000, non_white
    assert green > 20_000, green


# --- Ctrl-C in the middle of the fault ------------------------------------------------------


def test_sigint_during_the_fault_heals_the_lab(lab: Lab, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit.cli",
            "drill",
            "region-partition",
            "--region",
            "r2",
            "--lab-dir",
            str(lab.lab_dir),
            "--report",
            str(tmp_path),
            "--duration",
            "60s",
            "--fault-at",
            "5s",
            "--heal-after",
            "40s",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    history = tmp_path / "history.jsonl"
    try:
        deadline = time.monotonic() + 90
        injected = False
        while time.monotonic() < deadline and process.poll() is None and not injected:
            time.sleep(0.5)
            if history.exists():
                injected = any('"f":"inject"' in line and '"type":"ok"' in line for line in history.open())
        assert injected, "the fault was never injected"
        time.sleep(3)  # well inside the fault window
        cut = lab.host("r2-db1").run("iptables -S KGT-CUT | grep -c DROP").stdout.strip()
        assert cut not in ("", "0"), "r2 is not cut off during the fault"
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            lab.kgt("lab", "wan", "--clear")
    sys.stderr.write(out[-2000:])
    assert process.returncode == 2, out[-1500:]  # unknown: interrupted
    assert "interrupted" in out.strip().splitlines()[-1]
    for host in lab.topology.hosts:
        assert lab.host(host.name).run("iptables -S KGT-CUT | grep -c DROP").stdout.strip() in ("", "0"), host.name
    deadline = time.monotonic() + 40
    while True:
        status = {n.name: wsrep_status(lab.host(n.name)) for n in lab.topology.galera_nodes}
        whole = all(
            s.get("wsrep_cluster_status") == "Primary"
            and s.get("wsrep_cluster_size") == "3"
            and s.get("wsrep_local_state_comment") == "Synced"
            for s in status.values()
        )
        if whole or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert whole, status
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"] == "unknown" and report["timeline"]["interrupted"] is not None
    assert report["measurements"]["lost_writes"] == 0


def test_drill_refuses_an_unhealthy_lab_and_says_why(lab: Lab, tmp_path: Path) -> None:
    from toolkit.drills.backend import LabBackend

    node = lab.topology.host("r3-db1")
    lab.services(node.name).stop("keystone")
    try:
        done, data = drill(lab, "keystone-loss", tmp_path / "report", "--region", "r1", "--ready-timeout", "2s")
    finally:
        LabBackend(lab.topology).start_service(node, "keystone")
    assert done.returncode == 2, done.stderr
    assert "refusing to drill: the site is not healthy" in done.stderr
    # Either reason, depending on whether HAProxy has marked it down yet.
    assert "keystone-api/r3-db1 DOWN" in done.stderr or "Keystone through r3-vip1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not data  # nothing was injected, no report
    from toolkit.drills import preflight

    seconds, problems = preflight.wait_healthy(lab.topology, lab.secrets, LabBackend(lab.topology), 60)
    assert seconds is not None, problems  # the lab is left healthy
