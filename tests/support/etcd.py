"""A site's etcd cluster on loopback, started from the configs `kgt render` wrote (tests of publish and the agent).

The topology puts its members on 127.1.R.11 (any 127/8 address is this machine's), so the
rendered `etc/etcd/kgt.conf.yml` of each member runs as it is, but for its data folder, the
TLS files' folder (the member's rendered `etc/etcd/tls`), the extra loopback listener
(every member would take 127.0.0.1:2379) and the peers' TLS: on loopback every connection
comes from 127.0.0.1, which no member's certificate names, and etcd checks a peer's
certificate against its source address, so these members talk to each other in plain
HTTP (the lab's members, each at its own address, use the rendered peer TLS; clients here
still use the client port's TLS). Every process is stopped by pid.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from toolkit import tlsclient
from toolkit.retry import poll


def loopback_site(data: dict[str, Any], name: str = "kgt-rollout") -> dict[str, Any]:
    """Topology data (tests/unit/builders) moved to 127.1.R.0/24, each region's first host an etcd member."""
    data["name"] = name
    for region in data["regions"]:
        region["subnet"] = region["subnet"].replace("10.100.", "127.1.")
        for vip in region.get("vips", []):
            vip["address"] = vip["address"].replace("10.100.", "127.1.")
        for host in region["hosts"]:
            host["address"] = host["address"].replace("10.100.", "127.1.")
        region["hosts"][0]["roles"].append("etcd")
    return data


class Member:
    """One member, run from its rendered config."""

    def __init__(self, rendered: Path, host: str, base: Path) -> None:
        self.host, self.base = host, base
        conf = yaml.safe_load((rendered / host / "etc/etcd/kgt.conf.yml").read_text())
        conf["data-dir"] = str(base / "data")
        conf["listen-client-urls"] = conf["advertise-client-urls"]
        tls = rendered / host / "etc/etcd/tls"
        for section in ("client-transport-security", "peer-transport-security"):
            for key, value in conf.get(section, {}).items():
                if isinstance(value, str) and value.startswith("/etc/etcd/tls/"):
                    conf[section][key] = str(tls / Path(value).name)
        if conf.pop("peer-transport-security", None) is not None:
            for key in ("listen-peer-urls", "initial-advertise-peer-urls", "initial-cluster"):
                conf[key] = conf[key].replace("https://", "http://")
        self.url = str(conf["advertise-client-urls"])
        self.ca = tls / "ca.crt" if "client-transport-security" in conf else None
        base.mkdir(parents=True, exist_ok=True)
        (base / "etcd.yml").write_text(yaml.safe_dump(conf))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (its peers must come up too before it is healthy)."""
        with (self.base / "etcd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["etcd", "--config-file", str(self.base / "etcd.yml")], stdout=log, stderr=subprocess.STDOUT
            )

    def healthy(self) -> bool:
        """Whether it answers /health with true (it has a leader)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd {self.host} exited: {(self.base / 'etcd.log').read_text()[-1500:]}")
        host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        conn = tlsclient.http_connection(host, int(port), 1.0, self.ca)
        try:
            conn.request("GET", "/health")
            return b'"true"' in conn.getresponse().read()
        finally:
            conn.close()

    def stop(self) -> None:
        """TERM, then KILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Cluster:
    """Every member of a rendered site."""

    def __init__(self, rendered: Path, hosts: list[str], base: Path) -> None:
        self.members = [Member(rendered, h, base / h) for h in hosts]

    def start(self) -> None:
        """All at once, then wait until each has a leader."""
        for m in self.members:
            m.start()
        for m in self.members:
            poll(m.healthy, timeout=30, what=f"etcd {m.host}", every=0.2, retry_on=(OSError,))

    def stop(self) -> None:
        """Every member."""
        for m in self.members:
            m.stop()

    def stop_majority(self) -> list[Member]:
        """Stop all but one member; the stopped ones."""
        stopped = self.members[1:]
        for m in stopped:
            m.stop()
        return stopped

    def restart(self, members: list[Member]) -> None:
        """Start `members` again and wait for a leader."""
        for m in members:
            m.start()
        time.sleep(0.2)
        for m in self.members:
            poll(m.healthy, timeout=30, what=f"etcd {m.host}", every=0.2, retry_on=(OSError,))


def assert_need_to_know(topology: Any, secrets: Any, host: str, others: tuple[str, str]) -> None:
    """`host`'s agent credentials read its own manifest, and are refused on another host's manifest and contents
    (`others`: a host whose manifest, a host whose contents are tried) and on any write of a manifest."""
    from toolkit.errors import StorePermissionDenied
    from toolkit.rollout import publish
    from toolkit.rollout.credentials import for_host
    from toolkit.rollout.keys import Keys
    from toolkit.store import Store, StoreSettings

    keys, mine = Keys(topology.name), for_host(topology, secrets, host)
    with Store(StoreSettings(publish.endpoints(topology), topology.client_ca, mine.user, mine.password)) as store:
        assert store.get(keys.manifest(host)) is not None
        for attempt in (
            lambda: store.get(keys.manifest(others[0])),
            lambda: store.get_prefix(keys.blobs(others[1])),
            lambda: store.put(keys.manifest(host), b"{}"),  # an agent cannot publish
        ):
            try:
                attempt()
            except StorePermissionDenied:
                continue
            raise AssertionError(f"{host}'s credentials were not refused")
