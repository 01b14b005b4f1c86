"""The example lab's secure configuration, seen from outside: TLS handshakes, TLS-only MariaDB,
Keystone's own database sessions encrypted, IST and SST over TLS, least-privilege accounts.

Every other lab, check, probe and drill test runs over the same TLS and firewall (the
example turns them on); these tests show what they could not: that plaintext is refused,
that each certificate carries the names the topology says, and that each account works from
exactly the addresses it is for.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pymysql
import pytest
from cryptography import x509

from tests.integration.conftest import Lab
from toolkit import accounts
from toolkit.drills.monitor import haproxy_servers
from toolkit.pki.names import subject_alt_names
from toolkit.services import REJOIN

pytestmark = pytest.mark.integration

NODE_TLS = "-CAfile /etc/mysql/tls/ca.crt -cert /etc/mysql/tls/server.crt -key /etc/mysql/tls/server.key"
SCHEMA = "kgt_secure_test"
DENIED = {1045, 1698}  # access denied (with a password; for an account of another host or plugin)
CIPHER = re.compile(r"ECDHE-\S+|TLS_(AES_\d+_GCM|CHACHA20_POLY1305)_SHA\d+")  # TLS 1.2 ECDHE+AEAD, or TLS 1.3


def presented(output: str) -> x509.Certificate:
    """The server's certificate from `openssl s_client` output (which must say the chain verified)."""
    assert "Verify return code: 0 (ok)" in output, output[-1500:]
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", output, re.S)
    assert pem, output[-1500:]
    return x509.load_pem_x509_certificate(pem.group(0).encode())


def names_of(cert: x509.Certificate) -> set[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*sans.get_values_for_type(x509.DNSName), *(str(a) for a in sans.get_values_for_type(x509.IPAddress))}


def expected(lab: Lab, host: str) -> set[str]:
    names = subject_alt_names(lab.topology, lab.topology.host(host))
    return {*names.dns, *(str(a) for a in names.ips)}


def s_client_here(ca: Path, address: str, port: int, *extra: str) -> str:
    """`openssl s_client` from the lab's host (monitoring and admin network), verifying `address`."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:{port}", "-CAfile", str(ca), "-verify_return_error",
         "-verify_ip", address, *extra],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def test_every_galera_port_and_every_vip_presents_its_hosts_certificate_from_the_site_ca(lab: Lab) -> None:
    topology = lab.topology
    ca = topology.client_ca
    assert ca is not None
    nodes = topology.galera_nodes
    for i, node in enumerate(nodes):
        peer = nodes[(i + 1) % len(nodes)]  # gcomm is open to peers only, and wants a peer's certificate
        gcomm = lab.host(peer.name).run(
            f"openssl s_client -connect {node.address}:4567 {NODE_TLS} -verify_return_error "
            f"-verify_ip {node.address} </dev/null 2>&1",
            timeout=30,
        )
        assert names_of(presented(gcomm.stdout)) == expected(lab, node.name), f"{node.name}:4567"
        mysql = s_client_here(ca, str(node.address), 3306, "-starttls", "mysql")
        assert names_of(presented(mysql)) == expected(lab, node.name), f"{node.name}:3306"
    for vip in topology.vips:
        assert vip.master is not None
        https = s_client_here(ca, str(vip.address), 5000)
        got = names_of(presented(https))
        assert got == expected(lab, vip.master), vip.name
        assert {str(vip.address), f"keystone.{vip.region}.{topology.domain}"} <= got


class Client:
    """The mariadb command-line client inside a lab container, its password in a 0600 file."""

    def __init__(self, lab: Lab, where: str, user: str) -> None:
        self.host, self.user = lab.host(where), user
        self.password = lab.secrets[accounts.PASSWORDS[user]]

    def run(self, target: str | None, sql: str, *options: str) -> tuple[int | None, str]:
        """(the MariaDB error code or None, the output) of `sql` on `target` (None: the local socket)."""
        cnf = f"[client]\nuser={self.user}\npassword={self.password}\n"
        self.host.run("umask 077; cat > /tmp/kgt-client.cnf", input=cnf, timeout=10)
        where = f"-h {target}" if target else ""
        done = self.host.run(
            f"mariadb --defaults-extra-file=/tmp/kgt-client.cnf {where} {' '.join(options)} -N -B "
            f'--connect-timeout=5 -e "{sql}"; rc=$?; rm -f /tmp/kgt-client.cnf; exit $rc',
            timeout=30,
        )
        if done.ok:
            return None, done.stdout.strip()
        code = re.search(r"ERROR (\d+)", done.stderr)
        assert code, done.stderr
        return int(code.group(1)), done.stderr.strip()


def tls_options(ca: str) -> tuple[str, ...]:
    return ("--ssl", f"--ssl-ca={ca}", "--ssl-verify-server-cert")


def test_plaintext_is_refused_and_keystones_own_sessions_are_encrypted(lab: Lab) -> None:
    topology = lab.topology
    node = str(topology.host("r1-db1").address)
    client = Client(lab, "r1-proxy1", accounts.KEYSTONE_USER)  # a source the keystone account allows
    code, text = client.run(node, "SELECT 1", "--skip-ssl")
    # Refused: the account REQUIREs SSL (and the server requires secure transport); the same
    # client with the same password over TLS is let in just below.
    assert code in DENIED, text
    code, text = client.run(node, "SHOW SESSION STATUS LIKE 'Ssl_cipher'", *tls_options("/etc/haproxy/tls/ca.crt"))
    assert code is None and text.startswith("Ssl_cipher\t") and CIPHER.fullmatch(text.split("\t")[1]), text
    # Keystone's own session factory, from its own keystone.conf, on every Keystone host.
    script = (
        "import keystone.conf\n"
        "from keystone.common import sql\n"
        "from sqlalchemy import text\n"
        "keystone.conf.CONF(args=[], project='keystone', default_config_files=['/etc/keystone/keystone.conf'])\n"
        "with sql.session_for_read() as session:\n"
        "    print(session.execute(text(\"SHOW SESSION STATUS LIKE 'Ssl_cipher'\")).fetchall()[0][1])\n"
    )
    for host in topology.with_role("keystone"):
        done = lab.host(host.name).run("/opt/keystone/bin/python -", input=script, timeout=60)
        assert done.ok, done.stderr[-2000:]
        assert CIPHER.fullmatch(done.stdout.strip()), (host.name, done.stdout)


def mariadb_log(lab: Lab, node: str) -> str:
    return str(lab.services(node).log_since_start("mariadb"))


def test_a_rejoining_node_receives_ist_and_then_sst_over_tls(lab: Lab) -> None:
    topology = lab.topology
    joiner = topology.region("r3").galera_nodes[0]
    first = str(topology.galera_nodes[0].address)
    services = lab.services(joiner.name)
    conn = lab.connect(first)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        # IST: a clean stop, writes it misses, a restart from its own state.
        services.stop("mariadb")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {SCHEMA}.t (v) VALUES (%s)", [(i,) for i in range(20)])
        services.start("mariadb")
        services.wait_healthy("mariadb", REJOIN)
        log = mariadb_log(lab, joiner.name)
        assert re.search(r"IST receiver addr using ssl://", log), log[-3000:]
        assert "rsync IST completed on joiner" in log or "IST received" in log, log[-3000:]
        assert "State transfer required" not in log or "Receiving IST" in log
        # SST: the node forgets its state (no grastate.dat), so it needs the whole data set.
        services.stop("mariadb")
        lab.host(joiner.name).run("rm -f /var/lib/mysql/grastate.dat /var/lib/mysql/gvwstate.dat", timeout=10)
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {SCHEMA}.t (v) VALUES (99)")
        services.start("mariadb")
        services.wait_healthy("mariadb", REJOIN)
        log = mariadb_log(lab, joiner.name)
        assert re.search(r"Using stunnel for SSL encryption: .*ssl-mode='VERIFY_CA'", log), log[-3000:]
        assert "rsync SST completed on joiner" in log, log[-3000:]
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {SCHEMA}.t")
            count = cur.fetchone()[0]
        there = lab.connect(str(joiner.address))
        try:
            with there.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {SCHEMA}.t")
                assert cur.fetchone()[0] == count
        finally:
            there.close()
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")
        conn.close()


def refused_here(lab: Lab, address: str, user: str) -> int:
    """The MariaDB error code a session from the lab's host as `user` gets (it must be refused)."""
    with pytest.raises(pymysql.err.OperationalError) as refused:
        lab.connect(address, user=user).close()
    return int(refused.value.args[0])


def allowed_here(lab: Lab, address: str, user: str) -> Any:
    conn = lab.connect(address, user=user)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_each_account_works_from_its_sources_and_is_refused_elsewhere(lab: Lab) -> None:
    topology = lab.topology
    node = str(topology.host("r1-db1").address)
    ca = "/etc/haproxy/tls/ca.crt"
    # kgt_verify as `kgt check verify` makes it (through kgt_admin) on a schema of this test.
    verify = accounts.verify_account(topology, SCHEMA)
    conn = lab.connect(node)
    try:
        with conn.cursor() as cur:
            for statement in verify.statements(lab.secrets[verify.secret]):
                cur.execute(statement)
    finally:
        conn.close()
    # From the lab's host (monitoring and admin network): the admin, health and verify users.
    assert allowed_here(lab, node, accounts.ADMIN_USER) == "kgt_admin@10.213.0.0/255.255.255.0"
    assert allowed_here(lab, node, accounts.HEALTH_USER) == "kgt_health@10.213.0.1"
    assert allowed_here(lab, node, accounts.VERIFY_USER) == "kgt_verify@10.213.0.1"
    # ... but neither Keystone's nor the SST user: denied, no account for this source.
    assert refused_here(lab, node, accounts.KEYSTONE_USER) in DENIED
    assert refused_here(lab, node, accounts.SST_USER) in DENIED
    # From a proxy: Keystone's user (the source its sessions come from), over TLS only.
    proxy = "r1-proxy1"
    code, text = Client(lab, proxy, accounts.KEYSTONE_USER).run(node, "SELECT CURRENT_USER()", *tls_options(ca))
    assert code is None and text == "keystone@10.213.1.21", text
    code, text = Client(lab, proxy, accounts.VERIFY_USER).run(node, "SELECT CURRENT_USER()", *tls_options(ca))
    assert code is None and text == "kgt_verify@10.213.1.21", text
    for user in (accounts.ADMIN_USER, accounts.HEALTH_USER, accounts.SST_USER):
        code, text = Client(lab, proxy, user).run(node, "SELECT 1", *tls_options(ca))
        assert code in DENIED, (user, text)
    # From another Galera node (a peer, so the firewall lets it in): no kgt_verify there.
    code, text = Client(lab, "r2-db1", accounts.VERIFY_USER).run(
        node, "SELECT 1", *tls_options("/etc/mysql/tls/ca.crt")
    )
    assert code in DENIED, text
    # The SST user on its node's own socket (mariabackup runs there).
    code, text = Client(lab, "r1-db1", accounts.SST_USER).run(None, "SELECT CURRENT_USER()")
    assert code is None and text == "kgt_sst@localhost", text
    conn = lab.connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")
    finally:
        conn.close()


def test_probe_cert_is_ok_for_what_every_vip_and_node_presents_and_critical_for_the_wrong_one(lab: Lab) -> None:
    topology = lab.topology
    path = str(lab.topology_path)
    for vip in topology.vips:
        done = lab.kgt("probe", "cert", path, "--vip", vip.name, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith("KGT CERT OK"), done.stdout + done.stderr
    for node in topology.galera_nodes:  # the MariaDB client port: MySQL's SSL request, then TLS
        done = lab.kgt("probe", "cert", path, "--node", node.name, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith("KGT CERT OK"), done.stdout + done.stderr
    # r2's VIP answering where r1's is expected: a certificate of the site CA, for other names.
    r1, r2 = topology.region("r1").vips[0], topology.region("r2").vips[0]
    done = lab.kgt("probe", "cert", path, "--vip", r1.name, "-H", str(r2.address), timeout=60)
    assert done.returncode == 2 and done.stdout.startswith("KGT CERT CRITICAL"), done.stdout + done.stderr


def test_clients_that_never_finish_the_tls_handshake_hold_keystone_for_the_handshake_deadline_only(
    lab: Lab,
) -> None:
    """What a WAN cut in the middle of a handshake leaves: a peer that is gone, its reset lost.

    Every sync worker of r1-db1's gunicorn is given a connection that never sends its TLS
    ClientHello; Keystone must answer again within the 5 s handshake deadline
    (docker/keystone_gunicorn.py) plus slack, while those connections are still open
    (without the deadline it stayed stuck until gunicorn's arbiter killed the workers).
    """
    import socket
    import time

    from toolkit.services import http_ok

    topology = lab.topology
    host = topology.host("r1-db1")
    port = host.settings.keystone.port
    url = f"https://{host.address}:{port}/v3"
    assert http_ok(url, 5, topology.client_ca)
    silent = [
        socket.create_connection((str(host.address), port), timeout=5) for _ in range(host.settings.keystone.workers)
    ]
    try:
        started = time.monotonic()
        time.sleep(1)
        assert not http_ok(url, 1.5, topology.client_ca)  # every worker waits for a handshake
        while not http_ok(url, 2, topology.client_ca):
            assert time.monotonic() - started < 15, "Keystone still stuck after 15 s (the deadline is 5 s)"
            time.sleep(0.5)
    finally:
        for s in silent:
            s.close()
    # Leave the lab as found: every proxy has the server UP again.
    stats = lab.secrets["haproxy_stats_password"]
    deadline = time.monotonic() + 30
    while not all(
        haproxy_servers(p, stats).get(f"keystone-api/{host.name}") == "UP" for p in topology.with_role("haproxy")
    ):
        assert time.monotonic() < deadline, "HAProxy did not mark the Keystone server UP again"
        time.sleep(0.5)
