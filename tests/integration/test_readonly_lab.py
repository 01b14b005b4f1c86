"""A cut-off region serves Keystone read-only, refuses writes, and writes again through its own node after the heal.

The design's promise for the minor partition, checked on the example lab with the test's own
client loop (not the drill's): r3 cut off and declared non-Primary, tokens issued through
r3's VIP and validated there succeed from 5 s after HAProxy marks the writer down until the
heal; writes through r3's VIP fail (1047, non-Primary); and Keystone's token path sends no
write to the database (r3-db1's Com_insert/update/delete do not move while tokens are issued).

The promise has a precondition, shown here too: Keystone 30 records the UTC day of a user's
last password login (`UPDATE user SET last_active_at`, once per user per day), so only a user
already active that day logs in read-only; a user created before the cut who has not logged
in yet is answered 500 there (README: read-only mode).
"""

from __future__ import annotations

import datetime
import json
import secrets as random_secrets
import sys
import time
from typing import Any

import pymysql
import pytest

from tests.integration.conftest import Lab
from toolkit import accounts
from toolkit.drills.faults import SLACK
from toolkit.drills.faults.analysis import galera_detection
from toolkit.drills.monitor import haproxy_servers
from toolkit.drills.workloads import Credentials, http_request, keystone_endpoints
from toolkit.errors import Sent
from toolkit.services import synced, wsrep_status

pytestmark = pytest.mark.integration

REGION = "r3"
SCHEMA = "kgt_readonly_test"
WATCH = 15.0  # seconds of the client loop counted (after the 5 s grace), before the heal
WRITES = (
    "Com_insert",
    "Com_update",
    "Com_delete",
    "Com_replace",
    "Com_insert_select",
    "Com_update_multi",
    "Com_delete_multi",
)


def connect(lab: Lab, address: str, port: int = 3306) -> Any:
    """Through a VIP as kgt_verify, which the test grants on its schema (kgt_admin is refused through a proxy)."""
    return lab.connect(address, port, user=accounts.VERIFY_USER, timeout=2)


def prepare_schema(lab: Lab) -> None:
    """The test's table, made as kgt_admin straight on the first node, and kgt_verify granted on it."""
    topology = lab.topology
    conn = lab.connect(str(topology.galera_nodes[0].address))
    account = accounts.verify_account(topology, SCHEMA)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.t (id INT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64))")
            for statement in account.statements(lab.secrets[account.secret]):
                cur.execute(statement)
    finally:
        conn.close()


def write_through(lab: Lab, vip: str) -> str:
    """One insert through `vip`'s write port; the node that served it (raises on failure)."""
    conn = connect(lab, vip)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT @@wsrep_node_name")
            node = str(cur.fetchone()[0])
            cur.execute(f"INSERT INTO {SCHEMA}.t (node) VALUES (%s)", (node,))
            cur.execute("COMMIT")
        return node
    finally:
        conn.close()


def token_round(lab: Lab, endpoint: Any, credentials: Credentials) -> str | None:
    """Issue a token through `endpoint` and validate it there: None when both worked, else why not."""
    try:
        status, headers, body = http_request(endpoint, "POST", "/v3/auth/tokens?nocatalog", credentials.body(), {}, 3.0)
        if status != 201:
            return f"issue HTTP {status}: {body[:120]!r}"
        token = headers["x-subject-token"]
        status, _, body = http_request(
            endpoint, "GET", "/v3/auth/tokens?nocatalog", None, {"X-Auth-Token": token, "X-Subject-Token": token}, 3.0
        )
        return None if status == 200 else f"validate HTTP {status}: {body[:120]!r}"
    except (OSError, Sent) as exc:
        return f"{exc.__class__.__name__}: {exc}"


def today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def unscoped(user: str, password: str) -> dict[str, Any]:
    """A password login with no scope: the user needs no role, Keystone still authenticates it."""
    identity = {
        "methods": ["password"],
        "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
    }
    return {"auth": {"identity": identity}}


def admin_token(endpoint: Any, credentials: Credentials) -> str:
    status, headers, body = http_request(endpoint, "POST", "/v3/auth/tokens?nocatalog", credentials.body(), {}, 5.0)
    assert status == 201, (status, body[:200])
    return headers["x-subject-token"]


def create_user(endpoint: Any, token: str, name: str, password: str) -> str:
    """A user in the default domain (through a Primary region); its id."""
    body = {"user": {"name": name, "password": password, "domain_id": "default"}}
    status, _, raw = http_request(endpoint, "POST", "/v3/users", body, {"X-Auth-Token": token}, 5.0)
    assert status == 201, (status, raw[:200])
    return str(json.loads(raw)["user"]["id"])


def write_counters(lab: Lab, node: str) -> dict[str, int]:
    out = (
        lab.host(node)
        .sql("SHOW GLOBAL STATUS WHERE Variable_name IN (" + ", ".join(f"'{v}'" for v in WRITES) + ")")
        .stdout
    )
    return {k: int(v) for k, v in (line.split("\t") for line in out.splitlines() if "\t" in line)}


def wait(check: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic()
        except (pymysql.err.Error, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_cut_off_region_serves_tokens_read_only_refuses_writes_and_writes_again_after_the_heal(lab: Lab) -> None:
    topology = lab.topology
    region = topology.region(REGION)
    node = region.galera_nodes[0]
    vip = str(region.vips[0].address)
    endpoint = next(e for e in keystone_endpoints(topology) if e.region == REGION)
    credentials = Credentials("admin", lab.secrets["keystone_admin_password"])
    proxies = region.with_role("haproxy")
    stats = lab.secrets["haproxy_stats_password"]
    bound = max(h.settings.haproxy.detection_bound for h in proxies)
    prepare_schema(lab)
    assert wait(lambda: write_through(lab, vip) == node.name, 30, "r3 writes through its own node")
    # The precondition: the user is active today (UTC) in r3's copy, and a second user has never logged in.
    day = today()
    primary = next(e for e in keystone_endpoints(topology) if e.region == topology.regions[0].name)
    assert token_round(lab, endpoint, credentials) is None
    fresh, fresh_password = f"kgt-readonly-{random_secrets.token_hex(4)}", random_secrets.token_urlsafe(16)
    fresh_id = create_user(primary, admin_token(primary, credentials), fresh, fresh_password)
    assert wait(lambda: write_through(lab, vip) == node.name, 30, "r3 has replicated the new user")

    assert lab.kgt("lab", "wan", "--cut", REGION).returncode == 0
    try:
        wait(
            lambda: wsrep_status(lab.host(node.name)).get("wsrep_cluster_status") == "non-Primary",
            40,
            f"{node.name} non-Primary",
        )
        marked = wait(
            lambda: all(haproxy_servers(p, stats).get(f"galera-write/{node.name}") == "DOWN" for p in proxies),
            30,
            "HAProxy marks r3's writer down",
        )
        # The write listener now serves read-only through r3's own node (its fallback).
        served = wait(
            lambda: all(haproxy_servers(p, stats).get(f"galera-write/{node.name}-readonly") == "UP" for p in proxies),
            10,
            "the read-only fallback up",
        )
        assert served - marked < 2.0
        with pytest.raises(pymysql.err.OperationalError) as refused:
            write_through(lab, vip)
        assert refused.value.args[0] == 1047, refused.value  # WSREP has not yet prepared node: read-only
        before = write_counters(lab, node.name)
        results: list[str | None] = []
        start = marked + 5.0
        time.sleep(max(0.0, start - time.monotonic()))
        while time.monotonic() < start + WATCH:
            results.append(token_round(lab, endpoint, credentials))
            time.sleep(0.1)
        after = write_counters(lab, node.name)
        # What read-only refuses: a wrong password makes Keystone record the failure (a write),
        # so it answers 500 there instead of 401 (README: read-only mode).
        wrong = Credentials("admin", "not-the-password")
        status, _, _ = http_request(endpoint, "POST", "/v3/auth/tokens?nocatalog", wrong.body(), {}, 3.0)
        assert status == 500, status
        # And a user's first login of the day: Keystone records the day (a write), so 500 too.
        status, _, _ = http_request(endpoint, "POST", "/v3/auth/tokens", unscoped(fresh, fresh_password), {}, 3.0)
        assert status == 500, status
        assert wsrep_status(lab.host(node.name)).get("wsrep_cluster_status") == "non-Primary"
    finally:
        assert lab.kgt("lab", "wan", "--clear").returncode == 0
        healed = time.monotonic()
        # Whatever failed above, the next test gets a whole cluster.
        synced_at = wait(lambda: synced(lab.host(node.name)), 90, f"{node.name} Synced after the heal")
    if today() != day:
        pytest.skip("the run crossed midnight UTC: every user's first login of the new day is a write")
    failures = [r for r in results if r is not None]
    ok = len(results) - len(failures)
    sys.stderr.write(
        f"read-only {REGION}: {ok}/{len(results)} tokens issued and validated; write counters {before} → {after}\n"
    )
    assert len(results) >= 40
    assert ok / len(results) >= 0.95, failures[:5]
    # Keystone's token path (password authentication, issue, validation) wrote nothing.
    assert after == before, (before, after)

    # After the heal r3's node rejoins, then HAProxy's write listener goes back to it within its bound.
    back = wait(lambda: write_through(lab, vip) == node.name, 30, "r3 writes through its own node again")
    sys.stderr.write(
        f"heal: {node.name} Synced after {synced_at - healed:.1f}s, writes through it after "
        f"{back - healed:.1f}s (HAProxy bound {bound:g}s)\n"
    )
    assert back - synced_at <= bound + 1.0  # HAProxy's part: rise checks once the node passes /write
    # Once Primary again, the new user logs in (its first login of the day is written now).
    status, _, _ = http_request(endpoint, "POST", "/v3/auth/tokens", unscoped(fresh, fresh_password), {}, 5.0)
    assert status == 201, status
    status, _, _ = http_request(
        primary, "DELETE", f"/v3/users/{fresh_id}", None, {"X-Auth-Token": admin_token(primary, credentials)}, 5.0
    )
    assert status == 204, status
    # The whole return: Galera's merge is a view change like a detection (EVS suspect + install
    # timeouts bound it), then HAProxy's part above.
    galera = galera_detection(topology)
    assert synced_at - healed <= galera + SLACK
    assert back - healed <= galera + bound + 2 * SLACK
