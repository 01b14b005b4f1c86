"""The example lab's etcd cluster: one member per region, booted by `kgt lab up` (its `etcd` step).

Seen from the lab's host (10.213.0.1, which the firewall lets reach every member's client
port) through etcd's v3 HTTP gateway, verified against the site CA: three started members
with https peer URLs and one leader, a write through one member read back (linearizably)
from another, and a majority that outlives one stopped member. The peer port is open to
the other members only, so its refusal of a client without a certificate is shown from
r2-db1's container; the client port presents the host's certificate of the site CA.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.request
import uuid
from typing import Any

import pytest

from tests.integration.conftest import Lab
from tests.integration.test_secure_lab import CIPHER, expected, names_of, presented, s_client_here
from toolkit import tlsclient
from toolkit.services import SERVICES
from toolkit.topology import etcd

pytestmark = pytest.mark.integration

PREFIX = "/kgt-test/etcd-lab/"  # every key these tests write, deleted again


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def gateway(lab: Lab, member: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5) -> Any:
    """POST `body` to the v3 gateway of `member`'s client port, from here, verified against the site CA."""
    topology = lab.topology
    host = topology.host(member)
    ca = topology.client_ca
    assert ca is not None
    request = urllib.request.Request(
        f"https://{host.address}:{host.settings.etcd.client_port}{path}",
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout, context=tlsclient.context(ca)) as response:
        assert response.status == 200, (member, path, response.status)
        return json.load(response)


def put(lab: Lab, member: str, key: str, value: str) -> None:
    gateway(lab, member, "/v3/kv/put", {"key": b64(key), "value": b64(value)})


def get(lab: Lab, member: str, key: str) -> tuple[str | None, str]:
    """(the value or None, the id of the member that answered) of a linearizable read (the default)."""
    answer = gateway(lab, member, "/v3/kv/range", {"key": b64(key)})
    kvs = answer.get("kvs") or []
    value = base64.b64decode(kvs[0]["value"]).decode() if kvs else None
    return value, answer["header"]["member_id"]


def clean(lab: Lab, member: str) -> None:
    prefix = PREFIX.encode()
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    gateway(lab, member, "/v3/kv/deleterange", {"key": b64(PREFIX), "range_end": base64.b64encode(end).decode()})


def member_ids(lab: Lab, member: str) -> dict[str, str]:
    """name → member ID, from `member`'s member list."""
    return {m.get("name", ""): m["ID"] for m in gateway(lab, member, "/v3/cluster/member/list")["members"]}


def test_three_started_members_with_https_peer_urls_and_exactly_one_leader(lab: Lab) -> None:
    topology = lab.topology
    members = etcd.members(topology)
    assert [m.name for m in members] == ["r1-db1", "r2-db1", "r3-db1"]
    for member in members:
        listed = gateway(lab, member.name, "/v3/cluster/member/list")["members"]
        by_name = {m.get("name", ""): m for m in listed}  # a member not started yet has no name
        assert set(by_name) == {m.name for m in members}, (member.name, listed)
        for m in members:
            e = m.settings.etcd
            assert by_name[m.name]["peerURLs"] == [f"https://{m.address}:{e.peer_port}"], m.name
            assert by_name[m.name]["clientURLs"] == [f"https://{m.address}:{e.client_port}"], m.name
    ids = member_ids(lab, members[0].name)
    statuses = {m.name: gateway(lab, m.name, "/v3/maintenance/status") for m in members}
    leaders = {s["leader"] for s in statuses.values()}
    assert len(leaders) == 1, statuses  # every member follows the same leader ...
    (leader,) = leaders
    assert leader in ids.values()
    # ... and exactly one member is it.
    assert [n for n, s in statuses.items() if s["header"]["member_id"] == s["leader"]] == [
        n for n, i in ids.items() if i == leader
    ]


def test_a_put_through_one_member_is_read_back_from_another(lab: Lab) -> None:
    key, value = f"{PREFIX}{uuid.uuid4()}", f"written through r1-db1 at {time.time()}"
    ids = member_ids(lab, "r1-db1")
    try:
        put(lab, "r1-db1", key, value)
        for reader in ("r2-db1", "r3-db1"):
            assert get(lab, reader, key) == (value, ids[reader]), reader  # answered by that member
    finally:
        clean(lab, "r1-db1")
    assert get(lab, "r3-db1", key)[0] is None


def peer_request(lab: Lab, source: str, target: str, *tls: str) -> str:
    """An HTTP request to `target`'s peer port over `openssl s_client` in `source`'s container."""
    host = lab.topology.host(target)
    request = f"GET /version HTTP/1.1\\r\\nHost: {host.address}\\r\\nConnection: close\\r\\n\\r\\n"
    done = lab.host(source).run(
        f"printf '{request}' | timeout 15 openssl s_client -connect {host.address}:{host.settings.etcd.peer_port} "
        f"-CAfile /etc/etcd/tls/ca.crt -verify_return_error -verify_ip {host.address} -quiet -ign_eof "
        f"{' '.join(tls)} 2>&1",
        timeout=30,
    )
    return str(done.stdout)


def test_a_peer_connection_without_a_client_certificate_is_refused(lab: Lab) -> None:
    # From another member (the firewall opens the peer port to the members only).
    refused = peer_request(lab, "r2-db1", "r1-db1")
    assert "alert bad certificate" in refused or "alert certificate required" in refused, refused[-1500:]
    assert '"etcdserver"' not in refused
    # The same request with r2-db1's own certificate of the site CA is served.
    served = peer_request(lab, "r2-db1", "r1-db1", "-cert /etc/etcd/tls/server.crt -key /etc/etcd/tls/server.key")
    assert '"etcdserver":"3.4.' in served, served[-1500:]
    # From the lab's host, not a member: dropped by the firewall before any TLS.
    r1 = lab.topology.host("r1-db1")
    with pytest.raises(TimeoutError):
        socket.create_connection((str(r1.address), r1.settings.etcd.peer_port), timeout=2).close()


def test_the_client_port_presents_the_hosts_certificate_from_the_site_ca_and_asks_for_none(lab: Lab) -> None:
    topology = lab.topology
    ca = topology.client_ca
    assert ca is not None
    for member in etcd.members(topology):
        port = member.settings.etcd.client_port
        output = s_client_here(ca, str(member.address), port)
        assert names_of(presented(output)) == expected(lab, member.name), member.name
        assert "No client certificate CA names sent" in output, member.name  # clients log in instead
        tls12 = s_client_here(ca, str(member.address), port, "-tls1_2")
        negotiated = tls12.split("Cipher is ", 1)[1].split()[0] if "Cipher is " in tls12 else tls12[-500:]
        assert CIPHER.fullmatch(negotiated), (member.name, negotiated)  # ECDHE + AEAD under TLS 1.2


def healthy(lab: Lab, member: str) -> bool:
    """Whether `member`'s /health (a GET) says {"health":"true"}, from here over the site CA."""
    topology = lab.topology
    host = topology.host(member)
    assert topology.client_ca is not None
    url = f"https://{host.address}:{host.settings.etcd.client_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=2, context=tlsclient.context(topology.client_ca)) as response:
            return bool(response.status == 200 and json.load(response) == {"health": "true"})
    except OSError:  # refused, timed out, or 503 (urllib.error.HTTPError) without a leader
        return False


def test_every_member_is_healthy_as_the_boot_gate_asks(lab: Lab) -> None:
    for member in etcd.members(lab.topology):
        assert lab.services(member.name).healthy("etcd"), member.name  # the service table's check
        assert healthy(lab, member.name), member.name


def test_one_member_stopped_leaves_a_majority_and_it_rejoins_when_started(lab: Lab) -> None:
    topology = lab.topology
    stopped = lab.services("r3-db1")
    back = SERVICES["etcd"].back
    assert back is not None
    key = f"{PREFIX}{uuid.uuid4()}"
    try:
        stopped.stop("etcd")
        assert not stopped.running("etcd")
        deadline = time.monotonic() + 15  # a new leader within an election or two if r3-db1 led
        while True:
            try:
                put(lab, "r1-db1", key, "two of three")
                break
            except OSError:
                assert time.monotonic() < deadline, "no write through r1-db1 with r1-db1 and r2-db1 up"
                time.sleep(0.5)
        assert get(lab, "r2-db1", key)[0] == "two of three"
        assert healthy(lab, "r1-db1") and healthy(lab, "r2-db1")
        assert not healthy(lab, "r3-db1")
    finally:
        stopped.start("etcd")
        stopped.wait_healthy("etcd", back)
    try:
        # It caught up on what it missed, and the three follow one leader again.
        assert get(lab, "r3-db1", key)[0] == "two of three"
        leaders = {gateway(lab, m.name, "/v3/maintenance/status")["leader"] for m in etcd.members(topology)}
        assert len(leaders) == 1
    finally:
        clean(lab, "r1-db1")


def test_etcdctl_in_a_container_sees_one_leader_of_three(lab: Lab) -> None:
    """Debian's etcdctl (etcd-client, in the image) against every member's client URL."""
    members = etcd.members(lab.topology)
    endpoints = ",".join(f"https://{m.address}:{m.settings.etcd.client_port}" for m in members)
    done = lab.host("r1-db1").run(
        f"ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert=/etc/etcd/tls/ca.crt endpoint status -w json",
        timeout=30,
    )
    assert done.ok, done.stderr
    status = [s["Status"] for s in json.loads(done.stdout)]
    assert len(status) == len(members)
    assert len({s["leader"] for s in status}) == 1
    assert sum(s["header"]["member_id"] == s["leader"] for s in status) == 1
