"""The rendered HAProxy configs agree with every Keystone prediction of `kgt analyze`.

For each topology the configs are rendered and each proxy's `listen galera-write` is read
back from the TEXT (server lines in order: address, `backup`, `check` or `track`), so the
test checks what HAProxy will actually load, not the context functions that produced it.
Then every scenario of `scenarios(Layout.of(topology))` is simulated on those configs:

- the groups of regions that can still talk, and the lost hosts, come from the scenario's
  definition (node-loss: one group; region-loss: all but the lost region, whose hosts are
  lost; region-isolated R: {R} and the rest; split: the two sides named);
- a server is reachable from a proxy when its host is alive and in the proxy's group;
- a server that runs its own `check` in galera-write (`GET /write`) is UP iff its node is
  reachable and in a Primary component of the scenario; a server that `track`s
  `galera-read/<node>` (`GET /read`, dirty reads) is UP iff its node is reachable;
- HAProxy picks the active server if UP, else the first UP backup in config order:
  a /write server means "writable", a /read one "read-only", none "down".

A region's Keystone reaches the database at the address in its keystone.conf, which is
bound by its proxies' galera-write (the VIP moves to any live proxy). The analysis says
"down" when no host of the region is alive (`_scenario`), else maps the database state;
the simulation follows the same rule and otherwise asks the region's live proxies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders import CATALYST, EXAMPLE, LAB_REGION, fake_secrets, topology_data, write_topology

from toolkit.analysis.model import Layout, Scenario
from toolkit.analysis.quorum import analyze, scenarios
from toolkit.render import engine
from toolkit.topology import Host, Topology, load

# --- reading the rendered configs ---------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One `server` line of a listener, as HAProxy reads it."""

    name: str
    address: str  # ip:port
    backup: bool
    check: bool
    track: str | None  # `listener/server` whose state this server copies


@dataclass(frozen=True)
class Listener:
    """One `listen` section: where it binds, its health check path, its servers in order."""

    name: str
    binds: tuple[str, ...]
    health: str | None  # the path of `option httpchk GET <path>`
    servers: tuple[Server, ...]


def parse_listeners(text: str) -> dict[str, Listener]:
    """Every `listen` section of an haproxy.cfg, keyed by name."""
    raw: dict[str, dict[str, list[str] | list[Server] | str | None]] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split()
        if not line[0].isspace():
            current = words[1] if words[0] == "listen" else None
            if current is not None:
                assert current not in raw, f"listener {current} defined twice"
                raw[current] = {"binds": [], "health": None, "servers": []}
            continue
        if current is None:
            continue
        section = raw[current]
        if words[0] == "bind":
            section["binds"].append(words[1])  # type: ignore[union-attr,arg-type]
        elif words[:3] == ["option", "httpchk", "GET"]:
            section["health"] = words[3]
        elif words[0] == "server":
            options = words[3:]
            track = options[options.index("track") + 1] if "track" in options else None
            server = Server(words[1], words[2], "backup" in options, "check" in options, track)
            section["servers"].append(server)  # type: ignore[union-attr,arg-type]
    return {
        name: Listener(
            name,
            tuple(s["binds"]),  # type: ignore[arg-type]
            s["health"],  # type: ignore[arg-type]
            tuple(s["servers"]),  # type: ignore[arg-type]
        )
        for name, s in raw.items()
    }


def keystone_db_target(keystone_conf: str) -> str:
    """`address:port` of the database in a rendered keystone.conf."""
    match = re.search(r"^connection = mysql\+pymysql://[^@]+@([\d.]+:\d+)/keystone(\?\S*)?$", keystone_conf, re.M)
    assert match, "no database connection in keystone.conf"
    return match.group(1)


@dataclass(frozen=True)
class WriteServer:
    """A galera-write server resolved to its node and the health endpoint its state follows."""

    name: str
    node: Host
    backup: bool
    health: str  # "/write" (checks it) or "/read" (tracks galera-read)


@dataclass(frozen=True)
class Rendered:
    """What the simulation needs from one topology's rendered files."""

    write: dict[str, tuple[WriteServer, ...]]  # proxy → its galera-write servers, in order
    binds: dict[str, tuple[str, ...]]  # proxy → addresses its galera-write binds
    db_target: dict[str, str]  # keystone host → address:port it reaches the database at


def resolve(topology: Topology, proxy: str, listeners: dict[str, Listener]) -> tuple[WriteServer, ...]:
    """The galera-write servers of a proxy, each with the node behind it and its health path."""
    by_address = {str(h.address): h for h in topology.hosts}
    write = listeners["galera-write"]
    assert write.health == "/write", f"{proxy}: galera-write checks {write.health}"
    out = []
    for server in write.servers:
        ip, port = server.address.split(":")
        node = by_address.get(ip)
        assert node is not None and node.has("galera"), f"{proxy}: {server.name} at {ip} is not a Galera node"
        assert int(port) == node.settings.galera.port, f"{proxy}: {server.name} on port {port}"
        if server.track is None:
            assert server.check, f"{proxy}: {server.name} neither checks nor tracks"
            health = write.health
        else:
            assert not server.check, f"{proxy}: {server.name} both checks and tracks"
            listener, tracked_name = server.track.split("/")
            tracked = {s.name: s for s in listeners[listener].servers}[tracked_name]
            assert tracked.check and tracked.track is None, f"{proxy}: {server.track} runs no check"
            assert tracked.address == server.address, f"{proxy}: {server.name} tracks another address"
            health = listeners[listener].health  # type: ignore[assignment]
        assert health in ("/write", "/read"), f"{proxy}: {server.name} follows {health}"
        out.append(WriteServer(server.name, node, server.backup, health))
    actives = [s for s in out if not s.backup]
    assert len(actives) <= 1, f"{proxy}: several active write servers {[s.name for s in actives]}"
    return tuple(out)


def rendered(topology: Topology) -> Rendered:
    """Render the topology and read back the write listeners and Keystone's database address."""
    files = {f.path: f.content for f in engine.render(topology, fake_secrets())}
    write, binds = {}, {}
    for proxy in topology.with_role("haproxy"):
        listeners = parse_listeners(files[f"{proxy.name}/etc/haproxy/haproxy.cfg"])
        write[proxy.name] = resolve(topology, proxy.name, listeners)
        binds[proxy.name] = listeners["galera-write"].binds
    db_target = {
        h.name: keystone_db_target(files[f"{h.name}/etc/keystone/keystone.conf"])
        for h in topology.with_role("keystone")
    }
    return Rendered(write, binds, db_target)


# --- simulating a scenario on the configs -------------------------------------------


@dataclass(frozen=True)
class World:
    """The network in one scenario: which region is in which group, what is lost, what is Primary."""

    group_of: dict[str, int]  # region → index of its group (regions in no group are lost)
    lost: frozenset[str]
    primary_hosts: frozenset[str]

    def alive(self, host: Host) -> bool:
        return host.name not in self.lost and host.region in self.group_of

    def reachable(self, proxy: Host, node: Host) -> bool:
        return self.alive(proxy) and self.alive(node) and self.group_of[proxy.region] == self.group_of[node.region]

    def up(self, proxy: Host, server: WriteServer) -> bool:
        if not self.reachable(proxy, server.node):
            return False
        return server.health == "/read" or server.node.name in self.primary_hosts


def groups_of(topology: Topology, scenario: Scenario) -> tuple[list[set[str]], set[str]]:
    """Groups of regions that can talk, and lost hosts, from the scenario's definition alone."""
    everything = {r.name for r in topology.regions}
    if scenario.kind == "node-loss":
        return [everything], {scenario.name.removeprefix("lose ")}
    if scenario.kind == "region-loss":
        region = scenario.name.removeprefix("lose region ")
        return [everything - {region}], {h.name for h in topology.region(region).hosts}
    if scenario.kind == "region-isolated":
        region = scenario.name.removeprefix("isolate region ")
        return [{region}, everything - {region}], set()
    if scenario.kind == "split":
        match = re.fullmatch(r"split \{(.+)\} \| \{(.+)\}", scenario.name)
        assert match, f"unreadable split name {scenario.name!r}"
        return [set(match.group(1).split(",")), set(match.group(2).split(","))], set()
    raise AssertionError(f"unknown scenario kind {scenario.kind!r}")


def world_of(topology: Topology, scenario: Scenario) -> World:
    """The scenario's network, checked against the components the analysis reports."""
    groups, lost = groups_of(topology, scenario)
    assert all(h in {x.name for x in topology.hosts} for h in lost), f"{scenario.name}: unknown host lost"
    assert sorted(sorted(g) for g in groups) == sorted(sorted(c.regions) for c in scenario.components), (
        f"{scenario.name}: components {[c.regions for c in scenario.components]} are not the groups {groups}"
    )
    group_of = {region: i for i, group in enumerate(groups) for region in group}
    primary = frozenset(h for c in scenario.components if c.primary for h in c.hosts)
    return World(group_of, frozenset(lost), primary)


def write_outcome(world: World, proxy: Host, servers: tuple[WriteServer, ...]) -> tuple[str, str | None]:
    """What a proxy's galera-write gives in the scenario, and the server it picks."""
    actives = [s for s in servers if not s.backup and world.up(proxy, s)]
    chosen = actives[0] if actives else next((s for s in servers if s.backup and world.up(proxy, s)), None)
    if chosen is None:
        return "down", None
    return ("writable" if chosen.health == "/write" else "read-only"), chosen.name


def config_keystone(topology: Topology, configs: Rendered, world: World, region_name: str) -> tuple[str, str]:
    """A region's Keystone state as the rendered configs give it, and why."""
    region = topology.region(region_name)
    keystones = region.with_role("keystone")
    if not keystones:
        return "none", "no keystone host"
    if not any(world.alive(h) for h in region.hosts):
        return "down", "no host of the region alive"
    targets = {configs.db_target[h.name] for h in keystones}
    assert len(targets) == 1, f"{region_name}: keystone hosts reach different databases {targets}"
    target = targets.pop()
    proxies = [p for p in topology.with_role("haproxy") if target in configs.binds[p.name]]
    assert proxies, f"{region_name}: no proxy binds {target}"
    assert all(p.region == region_name for p in proxies), f"{region_name}: {target} is bound outside the region"
    live = [p for p in proxies if world.alive(p)]
    if not live:
        return "down", f"every proxy binding {target} is lost"
    answers = {p.name: write_outcome(world, p, configs.write[p.name]) for p in live}
    states = {state for state, _ in answers.values()}
    assert len(states) == 1, f"{region_name}: live proxies disagree {answers}"
    proxy, (state, server) = next(iter(answers.items()))
    return state, f"{proxy} galera-write picks {server or 'no server'}"


def disagreements(label: str, topology: Topology) -> tuple[list[str], list[Scenario], set[str]]:
    """Every (scenario, region) where the configs and the analysis differ, the scenarios, the states seen."""
    configs = rendered(topology)
    found, seen = [], set()
    all_scenarios = scenarios(Layout.of(topology))
    for scenario in all_scenarios:
        world = world_of(topology, scenario)
        for region in topology.regions:
            state, why = config_keystone(topology, configs, world, region.name)
            seen.add(state)
            predicted = scenario.regions[region.name].keystone
            if state != predicted:
                found.append(
                    f"{label} / {scenario.name} / region {region.name}: analysis says keystone {predicted!r} "
                    f"(database {scenario.regions[region.name].database!r}), rendered config gives {state!r} ({why})"
                )
    return found, all_scenarios, seen


# --- topologies ------------------------------------------------------------------------

TWO_NODES = ("galera+keystone+memcached", "galera", "haproxy+keepalived", "haproxy+keepalived")
NO_GALERA = ("keystone+memcached", "haproxy+keepalived", "haproxy+keepalived")


def four_regions(directory: Path) -> Topology:
    """Four regions of one node each: two-against-two splits are enumerated."""
    return load(write_topology(directory, topology_data(regions=4)))


def keystone_without_galera(directory: Path) -> Topology:
    """Three regions of one node, and r4 with Keystone and proxies but no Galera node."""
    data = topology_data(regions=4, per_region=[LAB_REGION, LAB_REGION, LAB_REGION, NO_GALERA])
    return load(write_topology(directory, data))


def garbd_arbiter(directory: Path) -> Topology:
    """Two regions of two nodes and r3 holding only a garbd."""
    return load(write_topology(directory, topology_data(per_region=[TWO_NODES, TWO_NODES, ("garbd",)])))


def garbd_with_keystone(directory: Path) -> Topology:
    """Two regions of two nodes and r3 with a garbd, Keystone and a proxy, but no Galera node."""
    data = topology_data(per_region=[TWO_NODES, TWO_NODES, ("garbd", "keystone+memcached", "haproxy+keepalived")])
    return load(write_topology(directory, data))


def proxy_on_the_galera_node(directory: Path) -> Topology:
    """Each region's only proxy runs on its Galera node; Keystone on a host of its own.

    Losing that node loses the region's database path too: Keystone is down there, not writable.
    """
    data = topology_data(per_region=("galera+haproxy+keepalived", "keystone+memcached"))
    return load(write_topology(directory, data))


def heavy_garbd(directory: Path) -> Topology:
    """r3 holds a garbd heavier than both data regions together, with Keystone and a proxy.

    Cut off, r3's garbd alone is a Primary component, but it holds no data: Keystone is down there.
    """
    data = topology_data(
        per_region=[
            ("galera+keystone+memcached", "haproxy+keepalived"),
            ("galera+keystone+memcached", "haproxy+keepalived"),
            ("garbd", "keystone+memcached", "haproxy+keepalived"),
        ],
        weights={"r3-arb1": 3},
    )
    return load(write_topology(directory, data))


TOPOLOGIES: dict[str, Callable[[Path], Topology]] = {
    "proxy-on-the-galera-node": proxy_on_the_galera_node,
    "heavy-garbd": heavy_garbd,
    "example": lambda _: load(EXAMPLE),
    "catalyst": lambda _: load(CATALYST),
    "four-regions": four_regions,
    "keystone-without-galera": keystone_without_galera,
    "garbd-arbiter": garbd_arbiter,
    "garbd-with-keystone": garbd_with_keystone,
}

# Scenario kinds each topology must produce, and Keystone states the simulation must reach,
# so a topology that silently stops exercising the read-only fallback fails here.
EXPECTED = {
    "proxy-on-the-galera-node": ({"node-loss", "region-loss", "region-isolated"}, {"writable", "read-only", "down"}),
    "heavy-garbd": ({"node-loss", "region-loss", "region-isolated"}, {"writable", "down"}),
    "example": ({"node-loss", "region-loss", "region-isolated"}, {"writable", "read-only", "down"}),
    "catalyst": ({"node-loss", "region-loss", "region-isolated"}, {"writable", "read-only", "down"}),
    "four-regions": ({"node-loss", "region-loss", "region-isolated", "split"}, {"writable", "read-only", "down"}),
    "keystone-without-galera": (
        {"node-loss", "region-loss", "region-isolated", "split"},
        {"writable", "read-only", "down"},
    ),
    "garbd-arbiter": ({"node-loss", "region-loss", "region-isolated"}, {"writable", "read-only", "down", "none"}),
    "garbd-with-keystone": ({"node-loss", "region-loss", "region-isolated"}, {"writable", "read-only", "down"}),
}


@pytest.mark.parametrize("label", list(TOPOLOGIES))
def test_rendered_write_listeners_agree_with_every_keystone_prediction(label: str, tmp_path: Path) -> None:
    topology = TOPOLOGIES[label](tmp_path)
    found, checked, seen = disagreements(label, topology)
    assert not found, "rendered configs and `kgt analyze` disagree:\n" + "\n".join(found)
    kinds, states = EXPECTED[label]
    assert {s.kind for s in checked} == kinds, f"{label}: scenario kinds {sorted({s.kind for s in checked})}"
    assert states <= seen, f"{label}: simulation never gave {sorted(states - seen)}"


def test_read_only_fallbacks_come_after_every_writer_and_skip_garbd(tmp_path: Path) -> None:
    """The order the agreement rests on: writers (local first), then every data node read-only."""
    topology = garbd_with_keystone(tmp_path)
    configs = rendered(topology)
    for proxy, servers in configs.write.items():
        health = [s.health for s in servers]
        assert health == sorted(health, key=lambda h: h == "/read"), f"{proxy}: a fallback before a writer"
        nodes = {h.name for h in topology.galera_nodes}
        assert {s.node.name for s in servers if s.health == "/write"} == nodes, proxy
        assert {s.node.name for s in servers if s.health == "/read"} == nodes, proxy
        assert all(s.name == f"{s.node.name}-readonly" for s in servers if s.health == "/read"), proxy
        assert not any(s.node.has("garbd") for s in servers), proxy


def test_region_with_keystone_but_no_local_galera_node_is_down_when_isolated(tmp_path: Path) -> None:
    topology = keystone_without_galera(tmp_path)
    assert not topology.region("r4").galera_nodes and topology.region("r4").with_role("keystone")
    by_name = {s.name: s for s in scenarios(Layout.of(topology))}
    isolated = by_name["isolate region r4"]
    assert isolated.regions["r4"].keystone == "down"
    assert isolated.regions["r4"].database == "down"
    configs = rendered(topology)
    world = world_of(topology, isolated)
    assert config_keystone(topology, configs, world, "r4")[0] == "down"
    # Every write server of r4's proxies is in another region, writers and read-only fallbacks alike.
    for proxy in topology.region("r4").with_role("haproxy"):
        servers = configs.write[proxy.name]
        assert servers and all(s.node.region != "r4" for s in servers), proxy.name
        assert all(not world.up(proxy, s) for s in servers), proxy.name
    # Not isolated, r4 writes through a remote node, and falls back to reads with its side's nodes.
    assert by_name["lose region r1"].regions["r4"].keystone == "writable"
    minority = by_name["split {r1,r4} | {r2,r3}"]
    assert minority.regions["r4"].keystone == "read-only"
    assert config_keystone(topology, configs, world_of(topology, minority), "r4")[0] == "read-only"


def test_a_region_whose_proxies_are_lost_has_no_keystone(tmp_path: Path) -> None:
    analysis = analyze(proxy_on_the_galera_node(tmp_path))
    lose = next(s for s in analysis.scenarios if s.name == "lose r1-db1")
    assert lose.survives
    assert (lose.regions["r1"].database, lose.regions["r1"].keystone) == ("primary", "down")
    assert lose.regions["r2"].keystone == "writable"


def test_a_primary_component_of_garbd_alone_holds_no_data_and_survives_nothing(tmp_path: Path) -> None:
    analysis = analyze(heavy_garbd(tmp_path))
    isolated = next(s for s in analysis.scenarios if s.name == "isolate region r3")
    garbd = next(c for c in isolated.components if c.regions == ("r3",))
    assert garbd.primary and not garbd.data
    assert (isolated.regions["r3"].database, isolated.regions["r3"].keystone) == ("down", "down")
    assert not isolated.survives  # the data regions lost Primary, and the garbd has no data to serve


def test_the_readme_says_what_read_only_mode_serves_refuses_and_leaves_stale() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("## Read-only mode")
    section = readme[start : readme.index("\n## ", start + 1)]
    items = {m.group(1): m.group(2) for m in re.finditer(r"^- \*\*(\w+)\*\*(.*?)(?=^- |\Z)", section, re.M | re.S)}
    assert set(items) >= {"Served", "Refused", "Stale"}, sorted(items)
    served, refused = " ".join(items["Served"].split()), " ".join(items["Refused"].split())
    # What the lab tests measured: validation always, logins only for users active that UTC day.
    assert "token validation" in served and "last_active_at" in served and "midnight UTC" in served
    assert "test_readonly_lab.py" in served
    for lost in ("password changes", "role assignments", "wrong password", "revoking a token"):
        assert lost in refused.lower(), lost
