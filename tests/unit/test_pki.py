"""The site PKI: SANs from the topology, `kgt pki init | status | rotate`, the check before render."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from builders import Result, example_text, topology_data, write_topology

from toolkit.files import write_atomic
from toolkit.pki import authority, store, verify
from toolkit.pki.names import subject_alt_names
from toolkit.topology import Topology, load

Kgt = Callable[..., Result]


def sans(topology: Topology, host: str) -> set[str]:
    names = subject_alt_names(topology, topology.host(host))
    return {*names.dns, *(str(a) for a in names.ips)}


def test_sans_of_the_example(example: Topology) -> None:
    every_db_vip = {f"10.213.{r}.{v}" for r in (1, 2, 3) for v in (100, 101)}
    assert sans(example, "r1-db1") == {
        "r1-db1",
        "r1-db1.kgt.example",
        "10.213.1.11",
        "db.r1.kgt.example",
        "db.r2.kgt.example",
        "db.r3.kgt.example",
        *every_db_vip,
    }
    assert sans(example, "r2-proxy1") == {
        "r2-proxy1",
        "r2-proxy1.kgt.example",
        "10.213.2.21",
        "r2-vip1.kgt.example",
        "r2-vip2.kgt.example",
        "r2.kgt.example",
        "keystone.r2.kgt.example",
        "db.r2.kgt.example",
        "keystone.kgt.example",
        "10.213.2.100",
        "10.213.2.101",
    }
    # The host's own names come first: CN and the name operators look for.
    assert subject_alt_names(example, example.host("r3-db1")).dns[:2] == ("r3-db1", "r3-db1.kgt.example")


@pytest.fixture
def mixed(tmp_path: Path) -> Topology:
    """r1: two Galera nodes and two proxies with VIPs; r2: a node and a proxy without VIPs; r3: a garbd."""
    layouts = [
        ("galera+keystone", "galera", "haproxy+keepalived", "haproxy+keepalived"),
        ("galera", "haproxy"),
        ("garbd",),
    ]
    return load(write_topology(tmp_path, topology_data(regions=3, per_region=layouts)))


def test_sans_with_several_proxies_and_regions(mixed: Topology) -> None:
    # Galera nodes carry every region's database name and listener addresses: r1's proxies
    # send clients to them as writer or backup through the VIPs, r2's through its own address.
    db = {"db.r1.kgt.example", "db.r2.kgt.example", "10.100.1.100", "10.100.1.101", "10.100.2.12"}
    assert sans(mixed, "r1-db1") == {"r1-db1", "r1-db1.kgt.example", "10.100.1.11", *db}
    assert sans(mixed, "r1-db2") == {"r1-db2", "r1-db2.kgt.example", "10.100.1.12", *db}
    assert sans(mixed, "r2-db1") == {"r2-db1", "r2-db1.kgt.example", "10.100.2.11", *db}
    r1_proxy = {
        "r1-vip1.kgt.example",
        "r1-vip2.kgt.example",
        "r1.kgt.example",
        "keystone.r1.kgt.example",
        "db.r1.kgt.example",
        "keystone.kgt.example",
        "10.100.1.100",
        "10.100.1.101",
    }
    assert sans(mixed, "r1-proxy1") == {"r1-proxy1", "r1-proxy1.kgt.example", "10.100.1.13", *r1_proxy}
    assert sans(mixed, "r1-proxy2") == {"r1-proxy2", "r1-proxy2.kgt.example", "10.100.1.14", *r1_proxy}
    # No VIPs in r2: the zone publishes no endpoint name there, the proxy answers as itself.
    assert sans(mixed, "r2-proxy1") == {"r2-proxy1", "r2-proxy1.kgt.example", "10.100.2.12"}
    assert sans(mixed, "r3-arb1") == {"r3-arb1", "r3-arb1.kgt.example", "10.100.3.11"}


def site(tmp_path: Path, tls: str = "tls: {}") -> Path:
    """The example with a `tls:` section (and known secrets) in tmp_path."""
    text = example_text(tls).replace(
        "secrets:\n  file: example.secrets.yaml\n  create: true", "secrets: {file: secrets.yaml}"
    )
    return write_topology(tmp_path, text, "example.yaml")


def key_bodies(directory: Path) -> list[str]:
    """The base64 lines of every private key under `directory`."""
    lines = []
    for path in directory.rglob("*.key"):
        lines += [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    return lines


def assert_no_key_material(directory: Path, *results: Result) -> None:
    bodies = key_bodies(directory)
    assert bodies
    for result in results:
        for line in bodies:
            assert line not in result.out and line not in result.err


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in directory.rglob("*")
        if p.is_file()
    }


def test_init_creates_the_ca_and_every_host_certificate_then_changes_nothing(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    first = kgt("pki", "init", topology)
    assert first.code == 0, first.err
    pki = tmp_path / "example.pki"
    assert "issued 9 host certificates" in first.out
    assert sorted(p.name for p in (pki / "certs").iterdir())[:2] == ["r1-db1.crt", "r1-db1.key"]
    before = snapshot(pki)
    second = kgt("pki", "init", topology)
    assert second.code == 0
    assert second.out.strip() == f"{pki}: nothing to do: the CA and all 9 host certificates exist"
    assert snapshot(pki) == before
    assert_no_key_material(pki, first, second)


def test_keys_are_0600_and_the_certificates_verify_with_openssl(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    assert kgt("pki", "init", topology).code == 0
    pki = tmp_path / "example.pki"
    keys = list(pki.rglob("*.key"))
    assert len(keys) == 10  # the CA's and one per host
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert not list(pki.rglob(".*"))  # no temporary file left behind
    assert verify.problems(load(topology)) == []
    if shutil.which("openssl"):
        for host in ("r1-db1", "r2-proxy1"):
            done = subprocess.run(
                [
                    "openssl",
                    "verify",
                    "-CAfile",
                    pki / "ca-bundle.crt",
                    "-purpose",
                    "sslserver",
                    pki / "certs" / f"{host}.crt",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr


def test_status_lists_every_certificate_and_exits_0(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    kgt("pki", "init", topology)
    result = kgt("pki", "status", topology, "--format", "json")
    assert result.code == 0, result.out
    data = json.loads(result.out)
    assert data["ok"] is True and data["warn_days"] == 30
    rows = data["certificates"]
    assert [r["host"] for r in rows] == ["CA", *(h.name for h in load(topology).hosts)]
    assert all(r["state"] == "ok" and r["problems"] == [] for r in rows)
    assert rows[1]["names_ok"] is True and 363 <= rows[1]["days_left"] <= 365
    table = kgt("pki", "status", topology)
    assert table.code == 0
    assert re.search(r"^r1-db1\s+ok\s+\d{4}-\d\d-\d\d\s+36\d\s+ok$", table.out, re.M), table.out
    assert_no_key_material(tmp_path / "example.pki", result, table)


def test_status_exits_1_for_a_certificate_expiring_within_the_threshold(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path, "tls: {days: 5}")
    kgt("pki", "init", topology)
    result = kgt("pki", "status", topology, "--warn-days", "30", "--format", "json")
    assert result.code == 1
    rows = json.loads(result.out)["certificates"]
    assert {r["state"] for r in rows[1:]} == {"expiring"} and rows[0]["state"] == "ok"
    assert kgt("pki", "status", topology, "--warn-days", "3").code == 0
    table = kgt("pki", "status", topology)
    assert table.code == 1 and "9 of 10 certificates need attention" in table.out


def test_status_exits_1_for_a_missing_certificate(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    kgt("pki", "init", topology)
    (tmp_path / "example.pki" / "certs" / "r2-db1.crt").unlink()
    result = kgt("pki", "status", topology)
    assert result.code == 1
    assert re.search(r"^r2-db1\s+-\s+-\s+-\s+invalid$", result.out, re.M), result.out


@pytest.fixture
def initialised(kgt: Kgt, tmp_path: Path) -> tuple[Path, Path]:
    """(the topology, its rendered output) after `pki init` and a good render."""
    topology = site(tmp_path)
    assert kgt("pki", "init", topology).code == 0
    out = tmp_path / "out"
    rendered = kgt("render", topology, "-o", out)
    assert rendered.code == 0, rendered.err
    return topology, out


def certs(topology: Path) -> Path:
    return topology.parent / "example.pki" / "certs"


def expired(topology: Path, host: str) -> None:
    model = load(topology)
    ca = store.Site.of(model).ca()
    assert ca is not None
    start = authority.now() - dt.timedelta(days=40)
    names = subject_alt_names(model, model.host(host))
    issued = authority.issue(ca, f"{host}.kgt.example", names, model.name, days=10, start=start)
    write_atomic(certs(topology) / f"{host}.key", authority.key_pem(issued.key))
    write_atomic(certs(topology) / f"{host}.crt", authority.cert_pem(issued.cert), 0o644)


def other_host(topology: Path, host: str) -> None:
    for ext in ("crt", "key"):
        shutil.copy(certs(topology) / f"r2-db1.{ext}", certs(topology) / f"{host}.{ext}")


def other_key(topology: Path, host: str) -> None:
    shutil.copy(certs(topology) / "r2-db1.key", certs(topology) / f"{host}.key")


def missing(topology: Path, host: str) -> None:
    (certs(topology) / f"{host}.crt").unlink()


CASES = {
    "wrong host": (other_host, "crt", "certificate is for 'r2-db1.kgt.example', not r1-db1: SANs lack r1-db1, "),
    "expired": (expired, "crt", "certificate expired on "),
    "key mismatch": (other_key, "key", "key does not match the certificate"),
    "missing": (missing, "crt", "certificate missing (run `kgt pki init "),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_certificate_is_one_line_exit_1_and_nothing_rendered(
    kgt: Kgt, initialised: tuple[Path, Path], case: str
) -> None:
    topology, out = initialised
    spoil, ext, what = CASES[case]
    spoil(topology, "r1-db1")
    before = snapshot(out)
    result = kgt("render", topology, "-o", out)
    assert result.code == 1
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"{certs(topology) / f'r1-db1.{ext}'}: host r1-db1: {what}"), lines[0]
    assert snapshot(out) == before  # the previous output untouched
    fresh = topology.parent / "fresh"
    assert kgt("render", topology, "-o", fresh).code == 1
    assert not fresh.exists()  # and no new one created
    assert_no_key_material(topology.parent / "example.pki", result)


def test_render_without_tls_needs_no_pki(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path, "")
    assert kgt("render", topology, "-o", tmp_path / "out").code == 0
    assert not (tmp_path / "example.pki").exists()


def test_tls_disabled_skips_the_check(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path, "tls: {enabled: false}")
    assert kgt("render", topology, "-o", tmp_path / "out").code == 0


def test_operator_ca_is_checked_and_never_written(kgt: Kgt, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    kgt("pki", "init", site(mine))
    topology = site(tmp_path, "tls: {ca: mine/example.pki/ca-bundle.crt, certs: mine/example.pki/certs}")
    assert kgt("render", topology, "-o", tmp_path / "out").code == 0
    refused = kgt("pki", "init", topology)
    assert refused.code == 1 and "names your own CA" in refused.err
    assert kgt("pki", "status", topology).code == 0
    missing(mine / "example.yaml", "r3-proxy2")
    result = kgt("render", topology, "-o", tmp_path / "out2")
    assert (
        result.code == 1 and "mine/example.pki/certs/r3-proxy2.crt: host r3-proxy2: certificate missing" in result.err
    )


def test_a_certificate_of_another_ca_does_not_chain(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    other = site(tmp_path / "other")
    kgt("pki", "init", topology)
    kgt("pki", "init", other)
    for ext in ("crt", "key"):
        shutil.copy(certs(other) / f"r1-db1.{ext}", certs(topology) / f"r1-db1.{ext}")
    result = kgt("render", topology, "-o", tmp_path / "out")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"{certs(topology) / 'r1-db1.crt'}: host r1-db1: not signed by the site CA "
        f"({tmp_path / 'example.pki' / 'ca-bundle.crt'})"
    ]


def test_rotate_host_gives_a_new_key_and_certificate(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    kgt("pki", "init", topology)
    old = (certs(topology) / "r1-db1.key").read_bytes(), (certs(topology) / "r2-db1.crt").read_bytes()
    result = kgt("pki", "rotate", topology, "--host", "r1-db1")
    assert result.code == 0 and "re-issued 1 host certificate" in result.out
    assert (certs(topology) / "r1-db1.key").read_bytes() != old[0]
    assert (certs(topology) / "r2-db1.crt").read_bytes() == old[1]
    assert stat.S_IMODE((certs(topology) / "r1-db1.key").stat().st_mode) == 0o600
    assert kgt("pki", "rotate", topology, "--host", "nope").code == 1
    assert kgt("pki", "rotate", topology, "--host", "r1-db1", "--ca").code == 2
    assert_no_key_material(tmp_path / "example.pki", result)


def test_ca_rotation_keeps_old_and_new_certificates_verifying(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    kgt("pki", "init", topology)
    bundle = tmp_path / "example.pki" / "ca-bundle.crt"
    assert kgt("pki", "rotate", topology, "--ca").code == 0
    assert len(verify.read_certs(bundle)) == 2
    assert verify.problems(load(topology)) == []  # old certificates still verify
    refused = kgt("pki", "rotate", topology, "--retire")
    assert refused.code == 1 and "still have certificates it signed" in refused.err
    kgt("pki", "rotate", topology, "--host", "r1-db1")
    assert verify.problems(load(topology)) == []  # old and new side by side
    kgt("pki", "rotate", topology)
    retired = kgt("pki", "rotate", topology, "--retire")
    assert retired.code == 0 and "dropped 1 previous CA" in retired.out
    assert len(verify.read_certs(bundle)) == 1
    assert verify.problems(load(topology)) == []
    assert (
        kgt("pki", "rotate", topology, "--retire")
        .out.strip()
        .endswith("nothing to retire: it trusts only the current CA")
    )


def test_a_world_readable_key_is_refused(kgt: Kgt, tmp_path: Path) -> None:
    topology = site(tmp_path)
    kgt("pki", "init", topology)
    (certs(topology) / "r1-db1.key").chmod(0o644)
    result = kgt("render", topology, "-o", tmp_path / "out")
    assert result.code == 1
    assert "r1-db1.key: host r1-db1: key is readable by group or others (mode 0644): chmod 600" in result.err


@pytest.mark.parametrize(
    ("tls", "line", "fragment"),
    [
        ("tls: {dri: x}", 1, "tls.dri: unknown key 'dri' (did you mean 'dir'?)"),
        ("tls: {days: many}", 1, "tls.days: Input should be a valid integer"),
        ("tls: {ca: ca.crt}", 1, "tls.ca: tls.ca needs tls.certs too"),
        ("tls: {dir: pki, ca: a, certs: b}", 1, "tls.dir: give either dir (kgt runs the CA) or ca and certs"),
    ],
)
def test_tls_section_is_validated(kgt: Kgt, tmp_path: Path, tls: str, line: int, fragment: str) -> None:
    topology = site(tmp_path, tls)
    result = kgt("validate", topology)
    assert result.code == 1
    assert result.err.startswith(f"{topology}:{line}: {fragment}"), result.err
