"""Userspace WAN emulator for the kgt Docker lab (stdlib only).

The lab puts every host of a multi-region topology on one L2 network
(10.213.0.0/16), each region a /24 inside it.  Cross-region traffic has to
see WAN delay, loss or a complete cut, but the kernel here has no
``sch_netem``, so the shaping is done in userspace by a small router:

* every container routes the *other* regions' /24s via the router
  (``ip route add 10.213.2.0/24 via ROUTER_IP``; ``accept_redirects=0``);
* in the router, ``setup`` enables forwarding, disables redirects and
  reverse-path filtering and creates a persistent TUN device ``kgtwan0``;
  a policy rule ``iif eth0 lookup 100`` plus ``default dev kgtwan0 table 100``
  hands every forwarded packet arriving on eth0 to the TUN device;
* ``run`` attaches to the TUN device, reads each IPv4 packet, classifies it
  by (source region, destination region), holds it for the configured
  one-way delay (or drops it for loss / cut) and writes it back.  The kernel
  then forwards it out of eth0; it now arrives with ``iif kgtwan0`` so the
  rule does not loop.

The config file is JSON and is re-read when it changes (checked at most every
100 ms), so ``kgt lab wan`` changes the WAN by rewriting it::

    {"regions": {"r1": "10.213.1.0/24", "r2": "10.213.2.0/24"},
     "rules": [{"between": null, "delay_ms": 25.0},
               {"between": ["r1", "r2"], "loss_pct": 1.0, "cut": false}],
     "seed": 1}

``between: null`` means all pairs.  Rules apply in order; a later rule
overrides, for the pairs it names, the fields it sets (unset fields keep
their earlier value).  ``delay_ms`` is one-way, so RTT grows by twice it.
An optional ``"router"`` object overrides :class:`RouterSettings`.

The router is fail-closed: while no ``run`` loop is attached the TUN device
has no carrier and cross-region traffic is dropped; ``teardown`` restores
direct forwarding.  In Docker the router needs ``--cap-add NET_ADMIN``,
``--device /dev/net/tun`` and, since /proc/sys is read-only there,
``--sysctl net.ipv4.ip_forward=1 --sysctl net.ipv4.conf.all.rp_filter=0
--sysctl net.ipv4.conf.default.rp_filter=0
--sysctl net.ipv4.conf.all.send_redirects=0
--sysctl net.ipv4.conf.default.send_redirects=0``
(``setup`` accepts read-only sysctls that already hold the wanted value).

Usage: ``python3 -m toolkit.lab.wanrouter {setup,run,teardown,status,check}``
or ``python3 wanrouter.py ...`` (the file has no package-relative imports).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import heapq
import ipaddress
import itertools
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ConfigError",
    "DelayQueue",
    "LinkParams",
    "RegionMap",
    "RouterSettings",
    "SetupError",
    "Shaper",
    "ShaperStats",
    "WanConfig",
    "classify",
    "cut_region_rules",
    "load_config",
    "main",
    "netem_available",
    "parse_config",
    "run",
    "setup",
    "status",
    "teardown",
    "write_config",
]

DEFAULT_CONFIG_PATH = "/run/kgt/wan.json"
RELOAD_INTERVAL_S = 0.1
MAX_DELAY_MS = 60_000.0
READ_BATCH = 256
READ_SIZE = 65_536
LOG_PREFIX = "kgt-wan:"

# linux/if_tun.h
_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_IFNAMSIZ = 16


class ConfigError(ValueError):
    """The WAN config is malformed or inconsistent."""


class SetupError(RuntimeError):
    """Router setup (sysctl, ip rule/route, TUN) failed."""


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LinkParams:
    """Impairment of one region pair (applies in both directions)."""

    delay_ms: float = 0.0
    loss_pct: float = 0.0
    cut: bool = False

    @property
    def is_clear(self) -> bool:
        """True when the pair is not impaired at all."""
        return self.delay_ms == 0.0 and self.loss_pct == 0.0 and not self.cut

    def describe(self) -> str:
        """Short text such as ``delay=25ms loss=1%`` or ``CUT``."""
        if self.cut:
            return "CUT"
        text = f"delay={self.delay_ms:g}ms"
        if self.loss_pct:
            text += f" loss={self.loss_pct:g}%"
        return text


CLEAR = LinkParams()


@dataclasses.dataclass(frozen=True)
class RouterSettings:
    """Names and numbers the router setup uses (config key ``router``)."""

    iface: str = "eth0"
    tun: str = "kgtwan0"
    table: int = 100
    priority: int = 100
    mtu: int = 65_535
    txqueuelen: int = 10_000


class RegionMap:
    """Maps IPv4 addresses (as int) to region names by longest prefix."""

    def __init__(self, regions: Mapping[str, ipaddress.IPv4Network]) -> None:
        nets = sorted(regions.items(), key=lambda kv: kv[1].prefixlen, reverse=True)
        for i, (name_a, net_a) in enumerate(nets):
            for name_b, net_b in nets[i + 1 :]:
                if net_a.overlaps(net_b):
                    raise ConfigError(f"regions {name_a!r} ({net_a}) and {name_b!r} ({net_b}) overlap")
        self.networks: dict[str, ipaddress.IPv4Network] = dict(regions)
        by_len: dict[int, dict[int, str]] = {}
        for name, net in nets:
            by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = name
        self._tables: list[tuple[int, dict[int, str]]] = [
            ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF, table) for plen, table in sorted(by_len.items(), reverse=True)
        ]

    def lookup(self, addr: int) -> str | None:
        """Region containing the address *addr* (an int), or ``None``."""
        for mask, table in self._tables:
            name = table.get(addr & mask)
            if name is not None:
                return name
        return None

    def names(self) -> list[str]:
        """Region names in config order."""
        return list(self.networks)


@dataclasses.dataclass(frozen=True)
class WanConfig:
    """Parsed config: regions plus per directed region pair link params."""

    regions: RegionMap
    links: Mapping[tuple[str, str], LinkParams]
    seed: int | None = None
    router: RouterSettings = RouterSettings()

    def params(self, src: str, dst: str) -> LinkParams:
        """Link parameters from region *src* to region *dst*."""
        return self.links.get((src, dst), CLEAR)

    def summary(self) -> str:
        """One-line human summary (unordered pairs, clear ones folded)."""
        names = self.regions.names()
        parts = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                p = self.params(a, b)
                if not p.is_clear:
                    parts.append(f"{a}<->{b} {p.describe()}")
        if not parts:
            return f"{len(names)} regions, all pairs clear"
        return f"{len(names)} regions; " + "; ".join(parts)


_RULE_KEYS = {"between", "delay_ms", "loss_pct", "cut"}
_ROUTER_KEYS = {f.name for f in dataclasses.fields(RouterSettings)}


def _number(value: object, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    num = float(value)
    if not lo <= num <= hi:
        raise ConfigError(f"{where} must be within [{lo:g}, {hi:g}], got {num:g}")
    return num


def _parse_router(raw: object) -> RouterSettings:
    if raw is None:
        return RouterSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'router' must be an object")
    unknown = set(raw) - _ROUTER_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) in 'router': {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(RouterSettings):
        if f.name not in raw:
            continue
        val = raw[f.name]
        if f.type in (str, "str"):
            if not isinstance(val, str) or not val or len(val) >= _IFNAMSIZ:
                raise ConfigError(f"router.{f.name} must be an interface name")
        elif isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise ConfigError(f"router.{f.name} must be a positive integer")
        kwargs[f.name] = val
    return RouterSettings(**kwargs)


def parse_config(data: Mapping[str, Any] | str | bytes) -> WanConfig:
    """Validate and resolve a config (a mapping or JSON text).

    Raises :class:`ConfigError` on any problem (unknown region, bad value,
    overlapping regions, unknown rule key, ...).
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a JSON object")

    raw_regions = data.get("regions")
    if not isinstance(raw_regions, dict) or not raw_regions:
        raise ConfigError("'regions' must be a non-empty object of name -> IPv4 CIDR")
    regions: dict[str, ipaddress.IPv4Network] = {}
    for name, cidr in raw_regions.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"bad region name {name!r}")
        if not isinstance(cidr, str):
            raise ConfigError(f"region {name!r}: CIDR must be a string")
        try:
            regions[name] = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as exc:
            raise ConfigError(f"region {name!r}: {exc}") from exc
    region_map = RegionMap(regions)
    names = list(regions)

    raw_rules = data.get("rules", [])
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise ConfigError("'rules' must be a list")

    # Unordered pair -> field overrides, applied in rule order.
    state: dict[frozenset[str], dict[str, Any]] = {}
    all_pairs = [frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1 :]]
    for idx, rule in enumerate(raw_rules):
        where = f"rules[{idx}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where} must be an object")
        unknown = set(rule) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        between = rule.get("between")
        if between is None:
            pairs = all_pairs
        else:
            if not isinstance(between, list) or len(between) != 2 or not all(isinstance(x, str) for x in between):
                raise ConfigError(f"{where}.between must be null or [region, region]")
            for region in between:
                if region not in regions:
                    raise ConfigError(f"{where}.between: unknown region {region!r}")
            if between[0] == between[1]:
                raise ConfigError(f"{where}.between names the same region twice")
            pairs = [frozenset(between)]
        fields: dict[str, Any] = {}
        if "delay_ms" in rule:
            fields["delay_ms"] = _number(rule["delay_ms"], f"{where}.delay_ms", 0.0, MAX_DELAY_MS)
        if "loss_pct" in rule:
            fields["loss_pct"] = _number(rule["loss_pct"], f"{where}.loss_pct", 0.0, 100.0)
        if "cut" in rule:
            if not isinstance(rule["cut"], bool):
                raise ConfigError(f"{where}.cut must be true or false")
            fields["cut"] = rule["cut"]
        for pair in pairs:
            state.setdefault(pair, {}).update(fields)

    links: dict[tuple[str, str], LinkParams] = {}
    for pair, fields in state.items():
        params = LinkParams(**fields)
        if params.is_clear:
            continue
        a, b = sorted(pair)
        links[(a, b)] = params
        links[(b, a)] = params

    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError("'seed' must be an integer or null")
    return WanConfig(regions=region_map, links=links, seed=seed, router=_parse_router(data.get("router")))


def load_config(path: str | os.PathLike[str]) -> WanConfig:
    """Read and parse the config file at *path*."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_config(text)


def cut_region_rules(region: str, regions: Iterable[str]) -> list[dict[str, Any]]:
    """Rules that cut *region* off from every other region."""
    return [{"between": [region, other], "cut": True} for other in regions if other != region]


def write_config(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Validate *data* and write it atomically (tmp file + rename)."""
    parse_config(data)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------
# Packet classification and shaping (pure)
# --------------------------------------------------------------------------


def classify(packet: bytes, regions: RegionMap) -> tuple[str, str] | None:
    """Return ``(src_region, dst_region)`` of a raw IPv4 packet.

    ``None`` (pass immediately) for non-IPv4, truncated headers, addresses
    outside every region, or traffic within one region.
    """
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    src = regions.lookup(int.from_bytes(packet[12:16], "big"))
    if src is None:
        return None
    dst = regions.lookup(int.from_bytes(packet[16:20], "big"))
    if dst is None or dst == src:
        return None
    return (src, dst)


class DelayQueue:
    """Packets held until a due time; FIFO per key (e.g. directed pair).

    A heap of ``(due, seq, packet)``.  A packet's due time is clamped to be
    no earlier than the previous one of the same key, so lowering the delay
    at run time never reorders a flow.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._last_due: dict[Hashable, float] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def queued_bytes(self) -> int:
        """Total size of the queued packets."""
        return self._bytes

    def last_due(self, key: Hashable) -> float | None:
        """Due time of the latest packet pushed under *key* (even if sent)."""
        return self._last_due.get(key)

    def push(self, key: Hashable, packet: bytes, due: float) -> bool:
        """Queue *packet*; ``False`` (not queued) when the byte limit is hit."""
        if self._bytes + len(packet) > self.max_bytes:
            return False
        last = self._last_due.get(key)
        if last is not None and due < last:
            due = last
        self._last_due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), packet))
        self._bytes += len(packet)
        return True

    def next_due(self) -> float | None:
        """Earliest due time in the queue, ``None`` when empty."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[bytes]:
        """Remove and return, in order, every packet due at or before *now*."""
        out: list[bytes] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            packet = heapq.heappop(heap)[2]
            self._bytes -= len(packet)
            out.append(packet)
        return out

    def clear(self) -> int:
        """Drop everything queued; returns how many packets were dropped."""
        n = len(self._heap)
        self._heap.clear()
        self._last_due.clear()
        self._bytes = 0
        return n


@dataclasses.dataclass
class ShaperStats:
    """Packet counters of a :class:`Shaper`."""

    passed_local: int = 0
    passed: int = 0
    delayed: int = 0
    dropped_loss: int = 0
    dropped_cut: int = 0
    dropped_overflow: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counters as a plain dict."""
        return dataclasses.asdict(self)


class Shaper:
    """Decides for each packet: pass now, hold until due, or drop."""

    def __init__(self, config: WanConfig, rng: random.Random | None = None, queue: DelayQueue | None = None) -> None:
        self.config = config
        self.rng = rng if rng is not None else random.Random(config.seed)
        self.queue = queue if queue is not None else DelayQueue()
        self.stats = ShaperStats()

    def update(self, config: WanConfig) -> None:
        """Switch to a new config; queued packets keep their due times."""
        self.config = config

    def submit(self, packet: bytes, now: float) -> bytes | None:
        """Return *packet* if it is to be sent right away, else ``None``."""
        pair = classify(packet, self.config.regions)
        if pair is None:
            self.stats.passed_local += 1
            return packet
        params = self.config.links.get(pair)
        if params is None:
            params = CLEAR
        if params.cut:
            self.stats.dropped_cut += 1
            return None
        if params.loss_pct > 0.0 and self.rng.random() * 100.0 < params.loss_pct:
            self.stats.dropped_loss += 1
            return None
        if params.delay_ms <= 0.0:
            last = self.queue.last_due(pair)
            if last is None or last <= now:
                self.stats.passed += 1
                return packet
        if self.queue.push(pair, packet, now + params.delay_ms / 1000.0):
            self.stats.delayed += 1
        else:
            self.stats.dropped_overflow += 1
        return None

    def next_due(self) -> float | None:
        """Earliest due time of a held packet, ``None`` if none is held."""
        return self.queue.next_due()

    def pop_due(self, now: float) -> list[bytes]:
        """Held packets due at or before *now*, in release order."""
        return self.queue.pop_due(now)


# --------------------------------------------------------------------------
# System side: sysctl, ip, TUN
# --------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"{LOG_PREFIX} {msg}", file=sys.stderr, flush=True)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SetupError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key


def _read_sysctl(key: str) -> str | None:
    try:
        return _sysctl_path(key).read_text().strip()
    except OSError:
        return None


def _set_sysctl(key: str, value: str, required: bool = True) -> None:
    """Set a sysctl; a read-only one that already has *value* is fine.

    A failure raises :class:`SetupError` if *required*, else is logged.
    """
    if _read_sysctl(key) == value:
        return
    try:
        _sysctl_path(key).write_text(value + "\n")
    except OSError as exc:
        dotted = key.replace("/", ".")
        msg = f"cannot set {dotted}={value} ({exc}); in Docker pass --sysctl {dotted}={value}"
        if required:
            raise SetupError(msg) from exc
        _log(f"warning: {msg}")


def _tun_ifreq(name: str, flags: int) -> bytes:
    encoded = name.encode()
    if not encoded or len(encoded) >= _IFNAMSIZ:
        raise SetupError(f"bad interface name {name!r}")
    return struct.pack("16sH22x", encoded, flags)


def _open_tun(name: str, persist: bool | None = None) -> int:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError(f"cannot open /dev/net/tun: {exc}") from exc
    try:
        fcntl.ioctl(fd, _TUNSETIFF, _tun_ifreq(name, _IFF_TUN | _IFF_NO_PI))
        if persist is not None:
            fcntl.ioctl(fd, _TUNSETPERSIST, 1 if persist else 0)
    except OSError as exc:
        os.close(fd)
        hint = " (another 'run' is attached?)" if exc.errno == 16 else ""
        raise SetupError(f"TUNSETIFF {name}: {exc}{hint}") from exc
    return fd


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _is_tun(name: str) -> bool:
    return Path("/sys/class/net", name, "tun_flags").exists()


def _rule_present(settings: RouterSettings) -> bool:
    out = _ip("rule", "show", check=False).stdout
    pat = re.compile(
        rf"^{settings.priority}:\s+from all iif {re.escape(settings.iface)}\b.*"
        rf"lookup {settings.table}\b",
        re.MULTILINE,
    )
    return bool(pat.search(out))


def _settings_from(config_path: str | os.PathLike[str] | None) -> RouterSettings:
    if config_path is None:
        return RouterSettings()
    return load_config(config_path).router


def setup(config_path: str | os.PathLike[str] | None = None, settings: RouterSettings | None = None) -> RouterSettings:
    """Idempotently prepare the router's namespace (sysctls, TUN, rule, route).

    The config (if given) is validated and its ``router`` section used.
    """
    if settings is None:
        settings = _settings_from(config_path)
    elif config_path is not None:
        load_config(config_path)
    s = settings
    if not _link_exists(s.iface):
        raise SetupError(f"interface {s.iface} does not exist")
    # Required: forwarding, and no reverse-path filter on the TUN device
    # (effective value is max(all, dev)): packets written back to it carry
    # sources that are routed via eth0.  Redirects cannot normally happen
    # (in/out interfaces always differ: eth0 -> tun -> eth0), so turning
    # them off and rp_filter on eth0 are belt and braces.
    _set_sysctl("net/ipv4/ip_forward", "1")
    _set_sysctl("net/ipv4/conf/all/rp_filter", "0")
    _set_sysctl("net/ipv4/conf/default/rp_filter", "0", required=False)
    _set_sysctl(f"net/ipv4/conf/{s.iface}/rp_filter", "0", required=False)
    for dev in ("all", "default", s.iface):
        _set_sysctl(f"net/ipv4/conf/{dev}/send_redirects", "0", required=False)

    if _link_exists(s.tun):
        if not _is_tun(s.tun):
            raise SetupError(f"{s.tun} exists and is not a TUN device")
    else:
        os.close(_open_tun(s.tun, persist=True))
    _set_sysctl(f"net/ipv4/conf/{s.tun}/rp_filter", "0")
    _set_sysctl(f"net/ipv4/conf/{s.tun}/send_redirects", "0", required=False)
    _ip("link", "set", "dev", s.tun, "mtu", str(s.mtu), "txqueuelen", str(s.txqueuelen), "up")
    _ip("route", "replace", "default", "dev", s.tun, "table", str(s.table))
    if not _rule_present(s):
        _ip("rule", "add", "iif", s.iface, "lookup", str(s.table), "priority", str(s.priority))
    return s


def teardown(settings: RouterSettings | None = None) -> None:
    """Remove the policy rule, the table route and the TUN device.

    Cross-region traffic is then forwarded directly (no impairment).
    Sysctls are left as they are.
    """
    s = settings if settings is not None else RouterSettings()
    for _ in range(16):
        proc = _ip("rule", "del", "iif", s.iface, "lookup", str(s.table), "priority", str(s.priority), check=False)
        if proc.returncode != 0:
            break
    _ip("route", "flush", "table", str(s.table), check=False)
    if _link_exists(s.tun) and _is_tun(s.tun):
        _ip("link", "del", "dev", s.tun)


def status(settings: RouterSettings | None = None) -> dict[str, Any]:
    """Describe the router's current state (read-only)."""
    s = settings if settings is not None else RouterSettings()
    carrier: str | None
    try:
        carrier = Path("/sys/class/net", s.tun, "carrier").read_text().strip()
    except OSError:
        carrier = None
    route = _ip("route", "show", "table", str(s.table), check=False).stdout
    return {
        "ip_forward": _read_sysctl("net/ipv4/ip_forward"),
        "rp_filter_all": _read_sysctl("net/ipv4/conf/all/rp_filter"),
        "send_redirects_all": _read_sysctl("net/ipv4/conf/all/send_redirects"),
        "tun_present": _link_exists(s.tun) and _is_tun(s.tun),
        "loop_attached": carrier == "1",
        "route_present": f"dev {s.tun}" in route,
        "rule_present": _rule_present(s),
    }


def netem_available() -> bool:
    """Whether ``tc ... netem`` works here, probed in a throwaway netns.

    Falls back to /proc/modules, /sys/module and ``modinfo`` when a
    namespace cannot be created (e.g. unprivileged container).
    """
    ns = f"kgt-netem-probe-{os.getpid()}"
    try:
        created = subprocess.run(["ip", "netns", "add", ns], capture_output=True, check=False).returncode == 0
    except OSError:
        created = False
    if created:
        try:
            proc = subprocess.run(
                ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"],
                capture_output=True,
                check=False,
                timeout=10,
            )
            return proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    try:
        if re.search(r"^sch_netem\s", Path("/proc/modules").read_text(), re.MULTILINE):
            return True
    except OSError:
        pass
    if Path("/sys/module/sch_netem").exists():
        return True
    try:
        return subprocess.run(["modinfo", "sch_netem"], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


class ConfigWatcher:
    """Notices when the config file changes (looked at no more often than `interval`)."""

    def __init__(self, path: str | os.PathLike[str], interval: float) -> None:
        self.path = Path(path)
        self.interval = interval
        self.next_check = 0.0
        self.signature = self._signature()
        self.failed_signature: tuple[int, int, int] | None = None

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def poll(self, now: float, force: bool = False) -> WanConfig | None:
        """A new config if the file changed and parses, else ``None``."""
        if not force and now < self.next_check:
            return None
        self.next_check = now + self.interval
        sig = self._signature()
        if sig is None or (not force and sig == self.signature):
            return None
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            if sig != self.failed_signature:
                _log(f"reload of {self.path} failed, keeping old config: {exc}")
                self.failed_signature = sig
            return None
        self.signature = sig
        return config


def _write_stats(path: Path, shaper: Shaper, started: float, reloads: int) -> None:
    data: dict[str, Any] = dict(shaper.stats.as_dict())
    data.update(
        queued=len(shaper.queue),
        queued_bytes=shaper.queue.queued_bytes,
        reloads=reloads,
        uptime_s=round(time.monotonic() - started, 3),
        pid=os.getpid(),
        config=shaper.config.summary(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


def run(
    config_path: str | os.PathLike[str],
    *,
    do_setup: bool = True,
    stats_path: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Shape traffic until SIGTERM/SIGINT; returns an exit status.

    SIGHUP forces a config reload, SIGUSR1 logs the counters.
    """
    config = load_config(config_path)
    settings = setup(config_path) if do_setup else config.router
    if not _is_tun(settings.tun):
        raise SetupError(f"TUN device {settings.tun} missing: run 'setup' first")
    shaper = Shaper(config)
    watcher = ConfigWatcher(config_path, RELOAD_INTERVAL_S)
    stats_file = Path(stats_path) if stats_path is not None else None

    tun = _open_tun(settings.tun)
    os.set_blocking(tun, False)
    rpipe, wpipe = os.pipe()
    os.set_blocking(rpipe, False)
    os.set_blocking(wpipe, False)
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
    old_handlers = {sig: signal.signal(sig, lambda *_: None) for sig in handled}
    old_wakeup = signal.set_wakeup_fd(wpipe, warn_on_full_buffer=False)

    started = time.monotonic()
    reloads = 0
    write_errors = 0
    next_stats = 0.0
    rc = 0
    stop = False
    _log(f"running on {settings.tun} (pid {os.getpid()}): {config.summary()}")
    try:
        while not stop:
            now = clock()
            for pkt in shaper.pop_due(now):
                try:
                    os.write(tun, pkt)
                except OSError:
                    write_errors += 1
            new = watcher.poll(now)
            if new is not None:
                shaper.update(new)
                reloads += 1
                _log(f"reloaded {config_path}: {new.summary()}")
            if stats_file is not None and now >= next_stats:
                next_stats = now + 1.0
                _write_stats(stats_file, shaper, started, reloads)

            timeout = max(watcher.next_check - now, 0.0)
            due = shaper.next_due()
            if due is not None:
                timeout = min(timeout, max(due - now, 0.0))
            try:
                ready, _, _ = select.select([tun, rpipe], [], [], timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                ready = []

            if rpipe in ready:
                for signum in os.read(rpipe, 64):
                    if signum in (signal.SIGTERM, signal.SIGINT):
                        stop = True
                    elif signum == signal.SIGHUP:
                        watcher.signature = None
                        watcher.next_check = 0.0
                    elif signum == signal.SIGUSR1:
                        _log(
                            f"stats {json.dumps(shaper.stats.as_dict())} "
                            f"queued={len(shaper.queue)} write_errors={write_errors}"
                        )
            if tun in ready:
                now = clock()
                for _ in range(READ_BATCH):
                    try:
                        pkt = os.read(tun, READ_SIZE)
                    except BlockingIOError:
                        break
                    out = shaper.submit(pkt, now)
                    if out is not None:
                        try:
                            os.write(tun, out)
                        except OSError:
                            write_errors += 1
    except OSError as exc:
        _log(f"fatal: {exc}")
        rc = 1
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        os.close(rpipe)
        os.close(wpipe)
        os.close(tun)
        if stats_file is not None:
            with contextlib.suppress(OSError):
                _write_stats(stats_file, shaper, started, reloads)
    _log(
        f"stopped: {json.dumps(shaper.stats.as_dict())} "
        f"discarded_queued={len(shaper.queue)} write_errors={write_errors}"
    )
    return rc


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanrouter", description="Userspace WAN delay/loss/cut router for the kgt lab."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="sysctls, TUN device, policy rule and route")
    p.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    p = sub.add_parser("run", help="shape traffic until SIGTERM (does setup first)")
    p.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    p.add_argument("--no-setup", action="store_true", help="assume setup was done")
    p.add_argument("--stats", default=None, help="write JSON counters here every second")
    p = sub.add_parser("teardown", help="remove rule, route and TUN device")
    p.add_argument("--config", default=None, help="read 'router' settings from here")
    p = sub.add_parser("status", help="print the router state as JSON")
    p.add_argument("--config", default=None)
    p.add_argument("--netem", action="store_true", help="also probe for sch_netem")
    p = sub.add_parser("check", help="validate a config file and print its summary")
    p.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "setup":
            setup(args.config)
            _log(f"setup done: {json.dumps(status(_settings_from(args.config)))}")
            return 0
        if args.command == "run":
            return run(args.config, do_setup=not args.no_setup, stats_path=args.stats)
        if args.command == "teardown":
            teardown(_settings_from(args.config))
            return 0
        if args.command == "status":
            info = status(_settings_from(args.config))
            if args.config is not None:
                info["config"] = load_config(args.config).summary()
            if args.netem:
                info["netem_available"] = netem_available()
            print(json.dumps(info, indent=2))
            return 0
        if args.command == "check":
            print(load_config(args.config).summary())
            return 0
    except (ConfigError, SetupError) as exc:
        _log(f"error: {exc}")
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
