"""`kgt diff`: changed files per host with secrets masked, and the reload plan."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from builders import (
    EXAMPLE,
    EXAMPLE_SECRETS,
    fake_secret_values,
    fake_secrets,
    make_topology,
    topology_data,
    write_topology,
)

from toolkit import secretstore
from toolkit.render import diff, engine, output
from toolkit.topology import Topology, load


def rendered(t: Topology, secrets: secretstore.Secrets, out: Path) -> list[engine.RenderedFile]:
    files = engine.render(t, secrets)
    output.write(t, files, out)
    return files


def test_no_changes_after_a_render(tmp_path: Path) -> None:
    t = make_topology(tmp_path)
    files = rendered(t, fake_secrets(), tmp_path / "out")
    assert diff.changes(files, tmp_path / "out", fake_secrets()) == []


def test_everything_is_added_against_a_missing_directory(tmp_path: Path) -> None:
    t = make_topology(tmp_path)
    files = engine.render(t, fake_secrets())
    changed = diff.changes(files, tmp_path / "nothing", fake_secrets())
    assert [c.path for c in changed] == [f.path for f in files]
    assert {c.status for c in changed} == {"added"}
    assert all(v not in c.diff for c in changed for v in fake_secret_values().values())


def test_weight_change_touches_every_galera_config(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rendered(make_topology(tmp_path / "a"), fake_secrets(), out)
    t2 = make_topology(tmp_path / "b", weights={"r2-db1": 2})
    changed = diff.changes(engine.render(t2, fake_secrets()), out, fake_secrets())
    copies = [c for c in changed if c.path.endswith(engine.TOPOLOGY_FILE)]  # every host's copy of the topology
    assert len(copies) == 9 and all("+    galera:\n+      weight: 2\n" in c.diff for c in copies)
    changed = [c for c in changed if c not in copies]
    assert [c.path for c in changed] == ["r2-db1/etc/mysql/mariadb.conf.d/60-galera.cnf"]
    assert changed[0].status == "changed" and changed[0].host == "r2-db1"
    assert "-wsrep_provider_options" in changed[0].diff and "pc.weight=2" in changed[0].diff


def test_removed_files_are_listed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rendered(make_topology(tmp_path / "a"), fake_secrets(), out)
    t2 = make_topology(tmp_path / "b", regions=2)
    changed = diff.changes(engine.render(t2, fake_secrets()), out, fake_secrets())
    removed = [c for c in changed if c.status == "removed"]
    assert {c.host for c in removed} == {"r3-db1", "r3-proxy1", "r3-proxy2"}
    assert all(c.reload == "remove the file by hand" for c in removed)


def test_secrets_are_masked_even_after_rotation(tmp_path: Path) -> None:
    """The directory holds the old values, which the secrets file no longer knows."""
    t = load(EXAMPLE)
    old = secretstore.read(EXAMPLE_SECRETS)
    out = tmp_path / "out"
    rendered(t, old, out)
    path = tmp_path / "secrets.yaml"
    shutil.copy(EXAMPLE_SECRETS, path)
    for name in ("keepalived_password", "sst_password", "keystone_db_password", "haproxy_stats_password"):
        secretstore.rotate(path, name)
    new = secretstore.read(path)
    changed = diff.changes(engine.render(t, new), out, new)
    assert changed
    text = "".join(c.diff for c in changed)
    for value in [*old.values.values(), *new.values.values()]:
        assert value not in text
    keystone = next(c for c in changed if c.path == "r1-db1/etc/keystone/keystone.conf")
    assert keystone.diff == "  (only secret values changed; masked)\n"


def test_old_secret_on_a_line_that_also_changed_is_masked(tmp_path: Path) -> None:
    data = topology_data()
    t = load(write_topology(tmp_path / "a", data))
    out = tmp_path / "out"
    rendered(t, fake_secrets(), out)
    data["regions"][0]["vips"][0]["address"] = "10.100.1.150"
    t2 = load(write_topology(tmp_path / "b", data))
    new_values = {**fake_secret_values(), "keystone_db_password": "FAKE-rotated-value"}
    new = secretstore.Secrets(tmp_path / "s.yaml", new_values)
    changed = {c.path: c for c in diff.changes(engine.render(t2, new), out, new)}
    keystone = changed["r1-db1/etc/keystone/keystone.conf"].diff
    assert "fake-keystone-db-password" not in keystone and "FAKE-rotated-value" not in keystone
    # The old line cannot be aligned with the new one after the secret, so all of its
    # rest is hidden: hiding too much beats showing an old password.
    assert "\n-connection = mysql+pymysql://keystone:********\n" in keystone
    assert "\n+connection = mysql+pymysql://keystone:********@10.100.1.150:3306/keystone\n" in keystone


def test_mask_existing_hides_the_rest_of_a_line_it_cannot_align() -> None:
    secrets = secretstore.Secrets(Path("s"), {"x": "NEWVALUE"})
    contexts = {("password = ", ""), ("url = user:", "@host")}
    text = "password = OLDVALUE\nurl = user:OLD@otherhost\nplain = 1\n"
    assert diff.mask_existing(text, secrets, contexts) == "password = ********\nurl = user:********\nplain = 1\n"


# --- the reload plan ----------------------------------------------------------------


def plan_for(tmp_path: Path, before: Topology, after: Topology) -> list[str]:
    out = tmp_path / "out"
    rendered(before, fake_secrets(), out)
    changed = diff.changes(engine.render(after, fake_secrets()), out, fake_secrets())
    return diff.reload_plan(after, changed)


def test_plan_restarts_galera_one_node_at_a_time_region_by_region_before_proxies(tmp_path: Path) -> None:
    before = make_topology(tmp_path / "a", per_region=["galera", "galera", "haproxy+keepalived", "haproxy+keepalived"])
    after = make_topology(
        tmp_path / "b",
        per_region=["galera", "galera", "haproxy+keepalived", "haproxy+keepalived"],
        rtt="300ms",  # new EVS timeouts on every node
        defaults={"haproxy": {"inter": "2s"}, "keepalived": {"advert_int": 2}},
    )
    plan = plan_for(tmp_path, before, after)
    galera = [i for i, step in enumerate(plan) if "systemctl restart mariadb" in step]
    proxies = [i for i, step in enumerate(plan) if "haproxy" in step or "keepalived" in step]
    assert [plan[i].split(":")[0] for i in galera] == ["r1-db1", "r1-db2", "r2-db1", "r2-db2", "r3-db1", "r3-db2"]
    assert all("wait until it is Synced before the next node" in plan[i] for i in galera)
    assert galera == list(range(6))
    assert proxies and min(proxies) > max(galera)
    haproxy = [i for i in proxies if "reload haproxy" in plan[i]]
    keepalived = [i for i in proxies if "reload keepalived" in plan[i]]
    assert max(haproxy) < min(keepalived)


def test_plan_keeps_every_distinct_reload_of_a_service(tmp_path: Path) -> None:
    """A changed zone needs `rndc reload` even when named.conf also changed (`rndc reconfig`)."""
    layout = ["galera+keystone+memcached", "haproxy+keepalived+dns"]
    before = make_topology(tmp_path / "a", per_region=layout)
    after = make_topology(tmp_path / "b", per_region=layout, vips=3, defaults={"dns": {"port": 5353}})
    plan = plan_for(tmp_path, before, after)
    r1 = [step for step in plan if step.startswith("r1-proxy1: ") and "rndc" in step]
    assert sorted(r1) == ["r1-proxy1: rndc reconfig", "r1-proxy1: rndc reload kgt.example"]


def test_kgt_diff_command(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topo = write_topology(tmp_path, topology_data())
    out = tmp_path / "out"
    assert kgt("render", topo, "-o", out).code == 0
    same = kgt("diff", topo, "--against", out)
    assert same.code == 0 and same.out == "no changes\n"
    changed_topo = write_topology(tmp_path, topology_data(weights=[1, 1, 3]), "changed.yaml")
    result = kgt("diff", changed_topo, "--against", out)
    assert result.code == 0
    assert re.search(r"^== every host \(9\)\nchanged: <host>/etc/kgt/topology.yaml$", result.out, re.M)
    assert re.search(r"^== r3-db1\nchanged: r3-db1/etc/mysql/mariadb.conf.d/60-galera.cnf$", result.out, re.M)
    assert result.out.count("changed: ") == 2
    assert "== reload plan\n1. r3-db1: rolling restart: systemctl restart mariadb" in result.out
    for value in fake_secret_values().values():
        assert value not in result.out + result.err


def test_kgt_diff_after_rotation_never_shows_a_secret(kgt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topo = write_topology(tmp_path, topology_data())
    out = tmp_path / "out"
    kgt("render", topo, "-o", out)
    old = secretstore.read(tmp_path / "secrets.yaml").values
    for name in old:
        assert kgt("secrets", "rotate", name, "--file", tmp_path / "secrets.yaml").code == 0
    new = secretstore.read(tmp_path / "secrets.yaml").values
    result = kgt("diff", topo, "--against", out)
    assert result.code == 0 and "changed:" in result.out
    for value in [*old.values(), *new.values()]:
        assert value not in result.out + result.err
