"""Publish and agent against a real three-member etcd on loopback, run from the configs `kgt render` wrote.

The site's members sit on 127.1.R.11 with TLS from the site PKI and authentication on;
each agent under test applies its generation under a folder of its own (its `root`). The
services' side is a recorder (the lab tests drive real services): here the subject is
what reaches etcd and disk — whole generations, checks before the swap, rollback, drift,
need-to-know, a killed agent, etcd's majority gone and back.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.etcd import Cluster, assert_need_to_know, loopback_site
from tests.unit.builders import fake_secret_values, topology_data
from toolkit import cli, secretstore
from toolkit.errors import ActionFailed, StoreUnavailable
from toolkit.render.select import Selection
from toolkit.rollout import apply as files
from toolkit.rollout import publish
from toolkit.rollout.agent import Agent, AgentConfig
from toolkit.rollout.coordinate import Coordinator
from toolkit.rollout.credentials import for_host
from toolkit.rollout.keys import Keys
from toolkit.rollout.manifest import Manifest, digest
from toolkit.store import Store, StoreSettings
from toolkit.topology import Topology, load

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("rollout")
    data = loopback_site(topology_data(regions=3, per_region=["galera", "haproxy"]))
    data["tls"] = {"create": True}
    path = base / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    secrets = base / "site.secrets.yaml"
    secretstore.write(secrets, {**fake_secret_values(), "agent_secret": "a" * 32, "etcd_root_password": "r" * 32})
    data["secrets"] = {"file": secrets.name}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert cli.main(["render", str(path), "-o", str(base / "out")]) == 0
    topology = load(path)
    cluster = Cluster(base / "out", [h.name for h in topology.with_role("etcd")], base / "etcd")
    try:
        cluster.start()
        yield {
            "path": path,
            "topology": topology,
            "secrets": secretstore.read(secrets),
            "cluster": cluster,
            "base": base,
        }
    finally:
        cluster.stop()


class Recorder(Coordinator):
    """The services' side: records each action; `fail` makes a service's health fail."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.done: list[tuple[str, str]] = []
        self.fail: set[str] = set()

    def act(self, service: str, action: str, paths: Sequence[str], *, coordinated: bool, waiting: Any) -> None:
        self.done.append((service, action))
        if service in self.fail and coordinated:
            raise ActionFailed(service, f"{service}: not healthy after {action}: (test)")


def agent_for(site: dict[str, Any], host: str) -> Agent:
    t: Topology = site["topology"]
    creds = for_host(t, site["secrets"], host)
    root = site["base"] / "roots" / host
    config = AgentConfig(
        t.name, host, publish.endpoints(t), t.client_ca, root / "secret", root / "var/lib/kgt/agent", root=root
    )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(StoreSettings(config.endpoints, config.ca, creds.user, creds.password))
    recorder = Recorder(store, Keys(t.name), host, root, lambda _t: None, lambda: t, lambda: 0)  # type: ignore[arg-type,return-value]
    return Agent(config, store, creds, recorder)


def kgt(*args: object) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def on_disk(agent: Agent, path: str) -> Path:
    return files.on_disk(agent.config.root, path)


def test_publish_then_an_agent_applies_its_whole_generation(site: dict[str, Any]) -> None:
    code, out, _ = kgt("publish", site["path"], "--dry-run")
    assert code == 0
    assert "r1-proxy1: nothing published; would publish" in out
    assert "== reload plan" in out
    assert "FAKE-" not in out and "a" * 32 not in out
    code, out, err = kgt("publish", site["path"])
    assert code == 0, err
    assert "published generation 1 to 6 hosts (0 unchanged)" in out
    agent = agent_for(site, "r1-proxy1")
    agent.step()
    assert agent.status.state == "applied", agent.status.reason
    manifest = agent.applied
    assert manifest is not None and manifest.generation == 1
    for entry in manifest.files:
        file = on_disk(agent, entry.path)
        assert digest(file.read_bytes()) == entry.sha256
        assert file.stat().st_mode & 0o777 == entry.mode
    assert ("haproxy", "reload") in agent.coordinator.done  # type: ignore[attr-defined]
    # nothing but the agent's own etcd credentials and files: no staged copies left
    assert not list(agent.config.root.rglob("*.kgt-new"))
    code, out, _ = kgt("rollout", "status", site["path"], "--host", "r1-proxy1")
    assert code == 0 and "r1-proxy1" in out and "applied" in out
    code, out, _ = kgt("rollout", "status", site["path"], "--format", "json")
    rows = {r["host"]: r for r in json.loads(out)}
    assert code == 1 and rows["r1-proxy1"]["converged"] and not rows["r2-proxy1"]["converged"]


def test_a_publish_that_changes_nothing_writes_nothing(site: dict[str, Any]) -> None:
    t = site["topology"]
    with Store(publish.root_settings(t, site["secrets"])) as store:
        before = store.get(Keys(t.name).generation)
        code, out, _ = kgt("publish", site["path"])
        after = store.get(Keys(t.name).generation)
    assert code == 0 and out.startswith("nothing to publish")
    assert before is not None and after is not None and before.mod_revision == after.mod_revision


def test_a_hosts_credentials_read_its_prefix_and_are_refused_on_anothers(site: dict[str, Any]) -> None:
    assert_need_to_know(site["topology"], site["secrets"], "r1-proxy1", ("r2-proxy1", "r2-db1"))


def test_no_secret_is_in_etcd_in_clear_text(site: dict[str, Any]) -> None:
    t = site["topology"]
    with Store(publish.root_settings(t, site["secrets"])) as store:
        everything, _ = store.get_prefix(Keys(t.name).prefix)
    stored = b"".join(item.value for item in everything.values())
    for name, value in site["secrets"].values.items():
        assert value.encode() not in stored, name
    assert b"PRIVATE KEY" not in stored


def publish_edited(site: dict[str, Any], host: str, suffix: str, *endings: str) -> int:
    """Publish for `host` its rendered files with `suffix` added to those whose path ends with `endings`."""
    t, secrets = site["topology"], site["secrets"]
    with Store(publish.root_settings(t, secrets)) as store:
        (p,) = publish.plan(store, t, secrets, Selection(hosts=(host,)))
        edited = [
            dataclasses.replace(f, content=f.content + suffix) if f.path.endswith(endings) else f for f in p.files
        ]
        new = Manifest.build(t.name, host, 0, p.new.published, edited)
        generation = publish.reserve_generation(store, Keys(t.name))
        publish.write_host(
            store, t, secrets, publish.HostPlan(host, p.current, p.current_revision, new, tuple(edited)), generation
        )
        return generation


def bad_haproxy(site: dict[str, Any], host: str) -> int:
    """A haproxy.cfg that `haproxy -c` refuses (a keyword HAProxy does not know)."""
    return publish_edited(site, host, "    no-such-haproxy-keyword 1\n", "haproxy.cfg")


def valid_haproxy(site: dict[str, Any], host: str) -> int:
    """A haproxy.cfg that passes its check (a comment more)."""
    return publish_edited(site, host, "# one more line\n", "haproxy.cfg")


def test_a_file_its_check_refuses_is_never_swapped_in_and_status_names_it(site: dict[str, Any]) -> None:
    agent = agent_for(site, "r1-proxy1")
    agent.step()
    cfg = on_disk(agent, "/etc/haproxy/haproxy.cfg")
    before = cfg.read_bytes()
    generation = bad_haproxy(site, "r1-proxy1")
    agent.step()
    assert agent.status.state == "failed"
    assert cfg.read_bytes() == before
    assert not cfg.with_name("haproxy.cfg.kgt-new").exists()
    code, out, _ = kgt("rollout", "status", site["path"], "--host", "r1-proxy1")
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("r1-proxy1"))
    assert "failed" in line and "/etc/haproxy/haproxy.cfg" in line and "haproxy -c" in line
    assert "no-such-haproxy-keyword" in line  # HAProxy's own message
    assert agent.status.target == generation
    # the next good publish is applied again
    assert kgt("publish", site["path"], "--host", "r1-proxy1")[0] == 0
    agent.step()
    assert agent.status.state == "applied"


def test_an_unhealthy_restart_is_rolled_back_and_halts_the_service(site: dict[str, Any]) -> None:
    agent = agent_for(site, "r2-proxy1")
    agent.step()
    assert agent.status.state == "applied"
    cfg = on_disk(agent, "/etc/haproxy/haproxy.cfg")
    good = cfg.read_bytes()
    generation = valid_haproxy(site, "r2-proxy1")
    agent.coordinator.fail.add("haproxy")  # type: ignore[attr-defined]
    agent.step()
    assert agent.status.state == "failed" and "rolled back to generation" in (agent.status.reason or "")
    assert cfg.read_bytes() == good
    assert agent.status.target == generation and agent.status.generation < generation
    t = site["topology"]
    with Store(publish.root_settings(t, site["secrets"])) as store:
        halt = store.get(Keys(t.name).halt("haproxy"))
        assert halt is not None and b"r2-proxy1" in halt.value
    code, out, _ = kgt("rollout", "resume", "haproxy", site["path"])
    assert code == 0 and out.startswith("haproxy: rollout resumed (it was halted: r2-proxy1: ")
    assert kgt("rollout", "resume", "haproxy", site["path"])[1] == "haproxy: its rollout is not halted\n"


def test_a_hand_edited_file_is_reported_as_drift_and_not_overwritten(site: dict[str, Any]) -> None:
    agent = agent_for(site, "r3-proxy1")
    agent.step()
    cfg = on_disk(agent, "/etc/haproxy/haproxy.cfg")
    cfg.write_text(cfg.read_text() + "# edited by hand\n")
    agent.step()
    assert agent.status.drift == ["/etc/haproxy/haproxy.cfg"]
    code, out, _ = kgt("rollout", "status", site["path"], "--host", "r3-proxy1")
    assert code == 1 and "drift: /etc/haproxy/haproxy.cfg" in out
    valid_haproxy(site, "r3-proxy1")
    agent.step()
    assert agent.status.state == "failed" and "drift" in (agent.status.reason or "")
    assert cfg.read_text().endswith("# edited by hand\n")


def test_an_agent_killed_mid_swap_leaves_old_or_new_files_and_finishes_on_restart(site: dict[str, Any]) -> None:
    agent = agent_for(site, "r1-db1")
    agent.step()
    assert agent.status.state == "applied", agent.status.reason
    old = {e.path: e.sha256 for e in agent.applied.files}  # type: ignore[union-attr]
    t = site["topology"]
    generation = publish_edited(site, "r1-db1", "# generation test\n", "60-galera.cnf", "health.cnf")
    # the crash: everything staged and checked, the journal written, one file of two renamed
    with Store(publish.root_settings(t, site["secrets"])) as store:
        item = store.get(Keys(t.name).manifest("r1-db1"))
    assert item is not None
    manifest = Manifest.from_bytes(item.value, "test")
    contents = agent.fetch(manifest)
    changed = agent.changed_entries(manifest)
    assert len(changed) >= 2
    staged = {e.path: files.stage(agent.config.root, e, contents[e.path]) for e in changed}
    assert files.run_checks(changed, staged) is None
    paths = [e.path for e in changed]
    files.keep_previous(agent.config.root, agent.config.state_dir, paths)
    files.Journal(manifest.generation, tuple(paths)).write(agent.config.state_dir)
    files.swap(agent.config.root, paths[:1])
    for e in manifest.files:  # at the crash: each file old or new, never anything else
        sha = files.sha_of(on_disk(agent, e.path))
        assert sha in (old.get(e.path), e.sha256)
    restarted = agent_for(site, "r1-db1")
    restarted.recover()
    assert restarted.status.state == "applied" and restarted.status.generation == generation
    for e in manifest.files:
        assert files.sha_of(on_disk(restarted, e.path)) == e.sha256
    assert ("mariadb", "restart") in restarted.coordinator.done  # type: ignore[attr-defined]
    assert not files.Journal.file(restarted.config.state_dir).exists()


def test_without_etcds_majority_agents_keep_their_files_say_stale_and_converge_after(site: dict[str, Any]) -> None:
    agent = agent_for(site, "r2-db1")
    agent.step()
    assert agent.status.state == "applied", agent.status.reason
    before = {e.path: files.sha_of(on_disk(agent, e.path)) for e in agent.applied.files}  # type: ignore[union-attr]
    stop = threading.Event()
    naps: list[float] = []

    def nap(seconds: float) -> bool:
        naps.append(seconds)
        return stop.wait(min(seconds, 0.5))

    runner = threading.Thread(target=agent.run, args=(stop, nap), daemon=True)
    cluster: Cluster = site["cluster"]
    stopped = cluster.stop_majority()
    try:
        runner.start()
        deadline = time.monotonic() + 30
        while agent.status.state != "stale" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert agent.status.state == "stale" and agent.status.stale_since
        code, _, err = kgt("publish", site["path"])
        assert code != 0 and err.startswith("kgt: ") and len(err.strip().splitlines()) == 1
        assert {p: files.sha_of(on_disk(agent, p)) for p in before} == before  # nothing removed or changed
    finally:
        cluster.restart(stopped)
    try:
        generation = publish_edited(site, "r2-db1", "# after the outage\n", "60-galera.cnf")
        deadline = time.monotonic() + 60
        while agent.status.generation != generation and time.monotonic() < deadline:
            time.sleep(0.2)
        assert agent.status.state == "applied" and agent.status.generation == generation
        assert agent.status.stale_since is None
        assert len(naps) >= 1 and max(naps) <= 15  # jittered backoff, bounded
    finally:
        stop.set()
        runner.join(30)
    with pytest.raises(StoreUnavailable):
        Store(StoreSettings(("https://127.1.9.11:2379",), site["topology"].client_ca, timeout=0.5)).get("/x")
