"""The example topology booted for real: Galera, HAProxy, keepalived, Keystone, DNS, WAN."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import pymysql
import pytest

from tests.integration.conftest import Lab
from toolkit.lab import network, services
from toolkit.render import context as ctx

pytestmark = pytest.mark.integration


def admin_connect(lab: Lab, address: str, port: int = 3306) -> Any:
    """As kgt_admin, straight to a node (kgt_admin is refused through a proxy: toolkit/accounts.py)."""
    return lab.connect(address, port)


def query_one(lab: Lab, address: str, sql: str, port: int = 3306) -> Any:
    """Through a VIP, as Keystone: the account its [database] connection uses, over TLS."""
    conn = lab.connect(address, port, user="keystone")
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return row[0] if row and len(row) == 1 else row
    finally:
        conn.close()


def wait_for(check: Any, timeout: float, what: str) -> float:
    """Poll `check` until true; a dropped connection counts as "not yet" (HAProxy shuts down
    sessions on a server it marks down, and on the backups when the local node is back)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except pymysql.err.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_every_galera_node_is_primary_synced_in_its_segment(lab: Lab) -> None:
    topology = lab.topology
    for region in topology.regions:
        for node in region.galera_nodes:
            conn = admin_connect(lab, str(node.address))
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep%'")
                status = dict(cur.fetchall())
                cur.execute("SELECT @@wsrep_provider_options")
                options = cur.fetchone()[0]
            conn.close()
            assert status["wsrep_cluster_size"] == "3", node.name
            assert status["wsrep_cluster_status"] == "Primary", node.name
            assert status["wsrep_local_state_comment"] == "Synced", node.name
            segment = re.search(r"gmcast\.segment = (\d+)", options)
            assert segment and int(segment.group(1)) == region.segment, (node.name, options[:200])


def rendered_write_order(lab: Lab, proxy: str) -> list[str]:
    cfg = (lab.lab_dir / "rendered" / proxy / "etc/haproxy/haproxy.cfg").read_text()
    block = cfg.split("listen galera-write", 1)[1].split("\nlisten ", 1)[0]
    return re.findall(r"^\s+server (\S+) ", block, flags=re.M)


def test_vip_sends_writes_to_local_node_then_next_backup(lab: Lab) -> None:
    topology = lab.topology
    for region in topology.regions:
        for vip in region.vips:
            assert query_one(lab, str(vip.address), "SELECT @@wsrep_node_name") == region.galera_nodes[0].name
    region = topology.regions[0]
    order = rendered_write_order(lab, region.with_role("haproxy")[0].name)
    assert order[0] == region.galera_nodes[0].name
    local = lab.host(order[0])
    bound = region.hosts[0].settings.haproxy.detection_bound
    local.run("touch /etc/kgt/maintenance", timeout=10)
    try:
        vip = str(region.vips[0].address)
        took = wait_for(
            lambda: query_one(lab, vip, "SELECT @@wsrep_node_name") == order[1],
            bound + 5,
            f"{vip} served by {order[1]}",
        )
        assert took <= bound + 2
    finally:
        local.run("rm -f /etc/kgt/maintenance", timeout=10)
    wait_for(lambda: query_one(lab, vip, "SELECT @@wsrep_node_name") == order[0], 15, "back on the local node")


def test_each_vip_on_its_master_and_moves_when_keepalived_stops(lab: Lab) -> None:
    topology = lab.topology
    for vip in topology.vips:
        assert str(vip.address) in services.held_vips(lab.host(vip.master)), vip.name
    vip = topology.regions[0].vips[0]
    master = lab.host(vip.master)
    other = next(h for h in topology.region(vip.region).with_role("keepalived") if h.name != vip.master)
    master.stop("keepalived")
    try:
        took = wait_for(
            lambda: str(vip.address) in services.held_vips(lab.host(other.name)), 10, f"{vip.address} on {other.name}"
        )
        assert str(vip.address) not in services.held_vips(master)
        assert took <= 5
    finally:
        lab.services(vip.master).start("keepalived")
    wait_for(lambda: str(vip.address) in services.held_vips(master), 15, f"{vip.address} back on {vip.master}")


def keystone_session(lab: Lab, address: str) -> Any:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=f"https://{address}:5000/v3",
        username="admin",
        password=lab.secrets["keystone_admin_password"],
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
    )
    return session.Session(auth=auth, timeout=15, verify=str(lab.topology.client_ca))


def validate(lab: Lab, session: Any, address: str, token: str) -> int:
    response = session.get(
        f"https://{address}:5000/v3/auth/tokens",
        headers={"X-Subject-Token": token},
        authenticated=True,
        raise_exc=False,
    )
    return int(response.status_code)


def test_token_from_r1_validates_in_r2_and_r3_but_not_with_other_keys(lab: Lab) -> None:
    topology = lab.topology
    r1 = str(topology.regions[0].vips[0].address)
    sess = keystone_session(lab, r1)
    token = sess.get_token()
    for region in topology.regions[1:]:
        assert validate(lab, sess, str(region.vips[0].address), token) == 200, region.name
    # A host whose Fernet keys differ cannot read tokens signed elsewhere.
    target = topology.regions[2].with_role("keystone")[0]
    h = lab.host(target.name)
    fresh = keystone_session(lab, r1).get_token()  # never validated (so never cached) in r3
    h.run("mv /etc/keystone/fernet-keys /etc/keystone/fernet-keys.kgt-saved", timeout=10)
    try:
        services.keystone_manage(h, "fernet_setup --keystone-user root --keystone-group root")
        assert validate(lab, sess, str(target.address), fresh) in (401, 404)
    finally:
        h.run(
            "rm -rf /etc/keystone/fernet-keys && mv /etc/keystone/fernet-keys.kgt-saved /etc/keystone/fernet-keys",
            timeout=10,
        )
    assert validate(lab, sess, str(target.address), token) == 200


def test_regional_names_resolve_to_exactly_the_region_vips(lab: Lab) -> None:
    import dns.resolver

    topology = lab.topology
    server = str(topology.with_role("dns")[0].address)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.lifetime = 5
    for region in topology.regions:
        for name in (region.name, f"keystone.{region.name}", f"db.{region.name}"):
            answer = resolver.resolve(f"{name}.{topology.domain}", "A")
            assert sorted(r.address for r in answer) == sorted(str(v.address) for v in region.vips), name


def median_connect(source: str, address: str, port: int) -> float:
    return statistics.median(network.tcp_connect_ms(source, address, port, count=7))


def test_wan_delay_only_between_regions(lab: Lab) -> None:
    topology = lab.topology
    r1, r3 = topology.regions[0], topology.regions[2]
    src, remote = r1.galera_nodes[0], r3.galera_nodes[0]
    # Inside the region: the flow its Keystone uses (the database VIP), which the firewall admits.
    local, port = ctx.db_address(r1), ctx.db_port(r1)
    done = lab.kgt("lab", "wan", "--rtt", "50ms")
    assert done.returncode == 0, done.stderr
    try:
        # The least of 7: the router's scheduling delay on a loaded host only ever adds (the median
        # of 7 once read 55.2 ms for 50 ms configured); the least is the delay it applies.
        cross = min(network.tcp_connect_ms(src.name, str(remote.address), 3306, count=7))
        inside = median_connect(src.name, local, port)
        assert 45.0 <= cross <= 55.0, cross
        assert inside < 5.0, inside
    finally:
        cleared = lab.kgt("lab", "wan", "--clear")
    assert cleared.returncode == 0, cleared.stderr
    assert median_connect(src.name, str(remote.address), 3306) < 5.0


def test_lab_up_twice_says_already_up(lab: Lab) -> None:
    done = lab.kgt("lab", "up", str(lab.topology_path))
    assert done.returncode == 1
    assert "already up" in done.stderr
    assert "Traceback" not in done.stderr


def test_lab_status_table(lab: Lab) -> None:
    done = lab.kgt("lab", "status")
    assert done.returncode == 0, done.stderr
    for host in lab.topology.hosts:
        assert re.search(rf"^{host.name}\s", done.stdout, flags=re.M), host.name
    assert "DOWN" not in done.stdout
    assert "Primary/Synced/size=3" in done.stdout
