"""TLS in the rendered configs: Galera (client port, replication, IST, SST), HAProxy, Keystone, the files."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
from builders import EXAMPLE_SECRETS, example_text, write_topology

from toolkit import tlsfiles
from toolkit.errors import PkiError
from toolkit.pki import verify
from toolkit.pki.store import prepare
from toolkit.render import context as ctx
from toolkit.render import diff as differ
from toolkit.render import engine
from toolkit.secretstore import read
from toolkit.topology import Topology, load


def render(topology: Topology) -> dict[str, engine.RenderedFile]:
    return {f.path: f for f in engine.render(topology, read(EXAMPLE_SECRETS))}


@pytest.fixture(scope="module")
def files() -> dict[str, engine.RenderedFile]:
    from builders import EXAMPLE

    return render(load(EXAMPLE))


@pytest.fixture
def plain(tmp_path: Path) -> dict[str, engine.RenderedFile]:
    return render(load(write_topology(tmp_path, example_text(None), "example.yaml")))


def test_galera_client_port_requires_tls_with_the_site_files(files: dict[str, engine.RenderedFile]) -> None:
    cnf = files["r1-db1/etc/mysql/mariadb.conf.d/60-galera.cnf"].content
    for line in (
        "ssl_ca = /etc/mysql/tls/ca.crt",
        "ssl_cert = /etc/mysql/tls/server.crt",
        "ssl_key = /etc/mysql/tls/server.key",
        "tls_version = TLSv1.2,TLSv1.3",
        f"ssl_cipher = {tlsfiles.CIPHERS}",
        "require_secure_transport = ON",
        "ssl-mode = VERIFY_CA",
    ):
        assert f"\n{line}\n" in cnf, line
    options = re.search(r'wsrep_provider_options = "(.*)"', cnf)
    assert options is not None
    assert {
        "socket.ssl_cert=/etc/mysql/tls/server.crt",
        "socket.ssl_key=/etc/mysql/tls/server.key",
        "socket.ssl_ca=/etc/mysql/tls/ca.crt",
        f"socket.ssl_cipher={tlsfiles.CIPHERS}",
    } <= set(options.group(1).split("; "))


def test_mariabackup_sst_goes_through_socat_tls(tmp_path: Path) -> None:
    text = example_text("tls: {create: true}").replace("sst_method: rsync", "sst_method: mariabackup")
    topology = load(write_topology(tmp_path, text, "example.yaml"))
    assert prepare(topology)  # create: true made the PKI, as `kgt render` does first
    cnf = render(topology)["r1-db1/etc/mysql/mariadb.conf.d/60-galera.cnf"]
    sst = cnf.content.split("[sst]", 1)[1]
    assert "encrypt = 3" in sst and "tcert = /etc/mysql/tls/server.crt" in sst and "ssl-mode = VERIFY_CA" in sst


def test_garbd_replicates_over_tls() -> None:
    from builders import topology_data

    data = topology_data(regions=3, per_region=[1, 1, ["garbd"]])
    assert ctx.socket_ssl(load_data(data, "tls: {create: true}"), "garbd")[0] == (
        "socket.ssl_cert",
        "/etc/kgt/garbd-tls/server.crt",
    )


def load_data(data: dict[str, object], tls: str) -> Topology:
    import tempfile

    import yaml

    directory = Path(tempfile.mkdtemp())
    return load(write_topology(directory, f"{tls}\n{yaml.safe_dump(data, sort_keys=False)}"))


def test_haproxy_terminates_keystone_tls_and_verifies_each_server(files: dict[str, engine.RenderedFile]) -> None:
    cfg = files["r1-proxy1/etc/haproxy/haproxy.cfg"].content
    keystone = cfg.split("listen keystone-api", 1)[1].split("listen ", 1)[0]
    binds = re.findall(r"^\s+bind (\S+)(.*)$", keystone, re.M)
    assert binds and all(rest == " ssl crt /etc/haproxy/tls/server.pem" for _, rest in binds)
    servers = re.findall(r"^\s+server (\S+) .*$", keystone, re.M)
    assert servers == ["r1-db1", "r2-db1", "r3-db1"]
    for name in servers:
        line = re.search(rf"^\s+server {name} .*$", keystone, re.M)
        assert line is not None
        assert f"ssl verify required ca-file /etc/haproxy/tls/ca.crt verifyhost {name}.kgt.example" in line.group(0)
    assert "ssl-default-bind-options ssl-min-ver TLSv1.2" in cfg
    # MySQL is passed through in TCP mode: the node itself terminates TLS.
    assert "ssl" not in cfg.split("listen galera-write", 1)[1].split("listen keystone-api", 1)[0]


def test_keystone_database_connection_verifies_the_node(files: dict[str, engine.RenderedFile]) -> None:
    conf = files["r2-db1/etc/keystone/keystone.conf"].content
    line = next(x for x in conf.splitlines() if x.startswith("connection = "))
    assert line.endswith("@10.213.2.100:3306/keystone?ssl_ca=/etc/keystone/tls/ca.crt&ssl_check_hostname=true")


def test_catalog_urls_are_https_on_a_tls_site(example: Topology) -> None:
    assert ctx.keystone_url(example, example.region("r3")) == "https://keystone.r3.kgt.example:5000/v3"
    assert ctx.vip_keystone_url(example, example.vips[0]) == "https://10.213.1.100:5000/v3"


def test_example_tls_files_are_the_site_pki_one_copy_per_service_owned_by_it(
    files: dict[str, engine.RenderedFile], example: Topology
) -> None:
    tls = example.tls
    assert tls is not None
    ca = tls.ca_file.read_text()
    for host in example.hosts:
        cert = verify.cert_file(tls, host.name).read_text()
        key = verify.key_file(tls, host.name).read_text()
        roles = [r for r in tlsfiles.BY_ROLE if host.has(r)]
        assert roles, host.name  # every host of the example speaks TLS somewhere
        for role in roles:
            d = tlsfiles.BY_ROLE[role]
            got = {p.removeprefix(host.name): f for p, f in files.items() if p.startswith(f"{host.name}{d.path}/")}
            assert got[d.ca].content == ca
            if d.combined:
                assert set(got) == {d.ca, d.cert} and got[d.cert].content == cert + key
            else:
                assert set(got) == {d.ca, d.cert, d.key}
                assert got[d.cert].content == cert and got[d.key].content == key
            assert all(f.owner == d.owner and f.service == d.service for f in got.values())
            assert stat.S_IMODE(got[d.key].mode) == 0o600
            assert got[d.ca].mode == 0o644


def test_without_tls_nothing_of_it_is_rendered(plain: dict[str, engine.RenderedFile]) -> None:
    assert not [p for p in plain if "/tls/" in p or p.endswith(".pem")]
    cnf = plain["r1-db1/etc/mysql/mariadb.conf.d/60-galera.cnf"].content
    assert "ssl" not in cnf and "require_secure_transport" not in cnf
    assert "ssl" not in plain["r1-proxy1/etc/haproxy/haproxy.cfg"].content
    assert "ssl_ca" not in plain["r1-db1/etc/keystone/keystone.conf"].content


def test_a_missing_certificate_stops_the_render_in_one_line(tmp_path: Path) -> None:
    path = write_topology(tmp_path, example_text("tls: {create: true}"), "example.yaml")
    topology = load(path)
    from toolkit.pki.store import init

    init(topology)
    (tmp_path / "example.pki" / "certs" / "r2-proxy1.crt").unlink()
    with pytest.raises(PkiError) as err:
        engine.render(topology, read(EXAMPLE_SECRETS))
    where = tmp_path / "example.pki/certs/r2-proxy1.crt"
    assert str(err.value) == f"{where}: host r2-proxy1: certificate cannot be read: No such file or directory"


def test_diff_never_shows_a_private_key(tmp_path: Path, files: dict[str, engine.RenderedFile]) -> None:
    changed = differ.changes(list(files.values()), tmp_path / "empty", read(EXAMPLE_SECRETS))
    keys = [c for c in changed if "PRIVATE KEY" in files[c.path].content]
    assert keys and all(c.diff == differ.KEY_HIDDEN for c in keys)
    assert not any("PRIVATE KEY" in c.diff for c in changed)


def test_kgt_diff_after_a_certificate_rotation_names_the_files_and_shows_no_key(kgt: Any, tmp_path: Path) -> None:
    path = write_topology(tmp_path, example_text("tls: {create: true}"), "example.yaml")
    out = tmp_path / "out"
    assert kgt("render", path, "-o", out).code == 0
    assert kgt("pki", "rotate", path, "--host", "r1-proxy1").code == 0
    result = kgt("diff", path, "--against", out)
    assert result.code == 0, result.err
    assert "changed: r1-proxy1/etc/haproxy/tls/server.pem\n" + differ.KEY_HIDDEN in result.out
    assert "1. r1-proxy1: systemctl reload haproxy" in result.out
    key = (tmp_path / "example.pki/certs/r1-proxy1.key").read_text().splitlines()[1]
    assert key not in result.out and "PRIVATE KEY" not in result.out
    (tmp_path / "example.pki/certs/r2-db1.crt").unlink()
    refused = kgt("diff", path, "--against", out)
    assert refused.code == 1 and refused.out == ""
    [line] = refused.err.splitlines()
    assert line.startswith(f"{tmp_path / 'example.pki/certs/r2-db1.crt'}: host r2-db1: certificate missing"), line
