"""`kgt probe keystone` against three tiny fake Keystone endpoints (one per region) on 127.0.0.1.

The fakes speak just enough of the Identity v3 API for keystoneauth1: POST
/v3/auth/tokens with a password issues a token (X-Subject-Token), GET /v3/auth/tokens
validates one. A region can be told to reject every token, as a Keystone whose Fernet
keys are out of sync with the issuing region does (404 Could not find token).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_probes_fakes import example_topology, http_server, password_file, run, silent_listener

TOKEN_BODY = {
    "token": {
        "methods": ["password"],
        "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2026-01-01T00:00:00.000000Z",
        "user": {"id": "u1", "name": "admin", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "p1", "name": "admin", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r1", "name": "admin"}],
        "catalog": [],
    }
}


class Site:
    """State shared by the fake regions."""

    issued: set[str] = set()  # noqa: RUF012
    rejecting: set[str] = set()  # noqa: RUF012
    slow: dict[str, float] = {}  # noqa: RUF012
    seen: list[tuple[str, str]] = []  # noqa: RUF012


def handler(region: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Keystone(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, code: int, body: dict[str, object], token: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if token:
                self.send_header("X-Subject-Token", token)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            Site.seen.append((region, "issue"))
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = body["auth"]["identity"]["password"]["user"]
            scope = body["auth"]["scope"]["project"]
            good = (user["name"], user["password"], user["domain"]["name"], scope["name"]) == (
                "admin",
                "ksadminpw",
                "Default",
                "admin",
            )
            if self.path != "/v3/auth/tokens" or not good:
                self.reply(401, {"error": {"code": 401, "title": "Unauthorized"}})
                return
            token = f"gAAAA-{len(Site.issued)}-{region}"
            Site.issued.add(token)
            self.reply(201, TOKEN_BODY, token)

        def do_GET(self) -> None:
            Site.seen.append((region, "validate"))
            time.sleep(Site.slow.get(region, 0.0))
            subject, auth = self.headers.get("X-Subject-Token"), self.headers.get("X-Auth-Token")
            if self.path != "/v3/auth/tokens" or auth not in Site.issued:
                self.reply(401, {"error": {"code": 401, "title": "Unauthorized"}})
            elif subject not in Site.issued or region in Site.rejecting:
                self.reply(
                    404, {"error": {"code": 404, "title": "Not Found", "message": f"Could not find token: {subject}."}}
                )
            else:
                self.reply(200, TOKEN_BODY, subject)

    return Keystone


@pytest.fixture
def regions() -> Iterator[dict[str, int]]:
    Site.issued, Site.rejecting, Site.slow, Site.seen = set(), set(), {}, []
    with contextlib.ExitStack() as stack:
        yield {r: stack.enter_context(http_server(handler(r))) for r in ("r1", "r2", "r3")}


def endpoints(ports: dict[str, int]) -> list[str]:
    out = []
    for region, port in ports.items():
        out += ["--endpoint", f"{region}=http://127.0.0.1:{port}/v3"]
    return out


def test_token_validates_everywhere_ok_with_latency_perfdata(tmp_path: Path, regions: dict[str, int]) -> None:
    out = run("keystone", str(example_topology(tmp_path)), *endpoints(regions))
    assert out.state == "OK", out.stdout
    assert out.text == "token issued in r1 validated in r1, r2, r3"
    assert Site.seen[0] == ("r1", "issue")
    assert sorted(Site.seen[1:]) == [("r1", "validate"), ("r2", "validate"), ("r3", "validate")]
    for label in ("issue_r1", "validate_r1", "validate_r2", "validate_r3"):
        assert out.perf[label]["uom"] == "s"
        assert out.perf[label]["min"] == "0"


def test_region_rejecting_the_token_is_critical_and_named(tmp_path: Path, regions: dict[str, int]) -> None:
    Site.rejecting = {"r2"}
    out = run("keystone", str(example_topology(tmp_path)), *endpoints(regions))
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith("r2 rejected a token issued in r1 (HTTP 404): Fernet keys out of sync?")
    assert "r3" not in out.text


def test_issue_region_can_be_chosen(tmp_path: Path, regions: dict[str, int]) -> None:
    out = run("keystone", str(example_topology(tmp_path)), *endpoints(regions), "--issue-region", "r3")
    assert out.state == "OK", out.stdout
    assert Site.seen[0] == ("r3", "issue")
    assert "issue_r3" in out.perf


def test_wrong_admin_password_is_unknown(tmp_path: Path, regions: dict[str, int]) -> None:
    out = run("keystone", *endpoints(regions), "--password-file", str(password_file(tmp_path, "nope")))
    assert out.state == "UNKNOWN", out.stdout
    assert "r1 (http://127.0.0.1:" in out.text and "rejected the credentials of admin" in out.text


def test_latency_thresholds(tmp_path: Path, regions: dict[str, int]) -> None:
    Site.slow = {"r3": 0.3}
    out = run("keystone", str(example_topology(tmp_path)), *endpoints(regions), "-w", "0.2")
    assert out.state == "WARNING", out.stdout
    assert out.text.startswith("validate_r3 0.3")
    assert out.perf["validate_r3"]["warn"] == "0.2"


def test_unreachable_region_is_critical(tmp_path: Path, regions: dict[str, int]) -> None:
    args = [*endpoints(regions), "--endpoint", "r3=http://127.0.0.1:1/v3"]
    out = run("keystone", str(example_topology(tmp_path)), *args)
    assert out.state == "CRITICAL", out.stdout
    assert out.text.startswith("r3: http://127.0.0.1:1/v3 unreachable: [Errno 111] Connection refused")


def test_timeout_is_honoured_against_a_hung_endpoint(tmp_path: Path, regions: dict[str, int]) -> None:
    with silent_listener() as port:
        args = [*endpoints(regions), "--endpoint", f"r2=http://127.0.0.1:{port}/v3"]
        out = run("keystone", str(example_topology(tmp_path)), *args, "-t", "2")
    assert out.state in ("CRITICAL", "UNKNOWN")
    assert out.seconds < 2 + 1 + 1.5, out.seconds


def test_unknown_region_in_endpoint_is_unknown(tmp_path: Path, regions: dict[str, int]) -> None:
    out = run("keystone", str(example_topology(tmp_path)), "--endpoint", "r9=http://x/v3")
    assert out.state == "UNKNOWN", out.stdout
    assert "unknown region r9" in out.text
