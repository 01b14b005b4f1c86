"""The router's namespace: sysctls, the TUN device, the policy rule and route (set up, torn down, read).

``setup`` enables forwarding, disables redirects and reverse-path filtering and creates
a persistent TUN device; a policy rule ``iif eth0 lookup 100`` plus ``default dev
kgtwan0 table 100`` hands every forwarded packet arriving on eth0 to the TUN device.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .config import RouterSettings, load_config
from .errors import SetupError, log
from .tun import is_tun, link_exists, open_tun


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; a failure raises :class:`SetupError` when *check*."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SetupError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key


def read_sysctl(key: str) -> str | None:
    """The value of sysctl *key* (``net/ipv4/ip_forward`` form), None if unreadable."""
    try:
        return _sysctl_path(key).read_text().strip()
    except OSError:
        return None


def set_sysctl(key: str, value: str, required: bool = True) -> None:
    """Set a sysctl; a read-only one that already has *value* is fine.

    A failure raises :class:`SetupError` if *required*, else is logged.
    """
    if read_sysctl(key) == value:
        return
    try:
        _sysctl_path(key).write_text(value + "\n")
    except OSError as exc:
        dotted = key.replace("/", ".")
        msg = f"cannot set {dotted}={value} ({exc}); in Docker pass --sysctl {dotted}={value}"
        if required:
            raise SetupError(msg) from exc
        log(f"warning: {msg}")


def _rule_present(settings: RouterSettings) -> bool:
    out = ip("rule", "show", check=False).stdout
    pat = re.compile(
        rf"^{settings.priority}:\s+from all iif {re.escape(settings.iface)}\b.*"
        rf"lookup {settings.table}\b",
        re.MULTILINE,
    )
    return bool(pat.search(out))


def settings_from(config_path: str | os.PathLike[str] | None) -> RouterSettings:
    """The ``router`` settings of the config at *config_path* (the defaults when None)."""
    if config_path is None:
        return RouterSettings()
    return load_config(config_path).router


def setup(config_path: str | os.PathLike[str] | None = None, settings: RouterSettings | None = None) -> RouterSettings:
    """Idempotently prepare the router's namespace (sysctls, TUN, rule, route).

    The config (if given) is validated and its ``router`` section used.
    """
    if settings is None:
        settings = settings_from(config_path)
    elif config_path is not None:
        load_config(config_path)
    s = settings
    if not link_exists(s.iface):
        raise SetupError(f"interface {s.iface} does not exist")
    # Required: forwarding, and no reverse-path filter on the TUN device
    # (effective value is max(all, dev)): packets written back to it carry
    # sources that are routed via eth0.  Redirects cannot normally happen
    # (in/out interfaces always differ: eth0 -> tun -> eth0), so turning
    # them off and rp_filter on eth0 are belt and braces.
    set_sysctl("net/ipv4/ip_forward", "1")
    set_sysctl("net/ipv4/conf/all/rp_filter", "0")
    set_sysctl("net/ipv4/conf/default/rp_filter", "0", required=False)
    set_sysctl(f"net/ipv4/conf/{s.iface}/rp_filter", "0", required=False)
    for dev in ("all", "default", s.iface):
        set_sysctl(f"net/ipv4/conf/{dev}/send_redirects", "0", required=False)

    if link_exists(s.tun):
        if not is_tun(s.tun):
            raise SetupError(f"{s.tun} exists and is not a TUN device")
    else:
        os.close(open_tun(s.tun, persist=True))
    set_sysctl(f"net/ipv4/conf/{s.tun}/rp_filter", "0")
    set_sysctl(f"net/ipv4/conf/{s.tun}/send_redirects", "0", required=False)
    ip("link", "set", "dev", s.tun, "mtu", str(s.mtu), "txqueuelen", str(s.txqueuelen), "up")
    ip("route", "replace", "default", "dev", s.tun, "table", str(s.table))
    if not _rule_present(s):
        ip("rule", "add", "iif", s.iface, "lookup", str(s.table), "priority", str(s.priority))
    return s


def teardown(settings: RouterSettings | None = None) -> None:
    """Remove the policy rule, the table route and the TUN device.

    Cross-region traffic is then forwarded directly (no impairment).
    Sysctls are left as they are.
    """
    s = settings if settings is not None else RouterSettings()
    for _ in range(16):
        proc = ip("rule", "del", "iif", s.iface, "lookup", str(s.table), "priority", str(s.priority), check=False)
        if proc.returncode != 0:
            break
    ip("route", "flush", "table", str(s.table), check=False)
    if link_exists(s.tun) and is_tun(s.tun):
        ip("link", "del", "dev", s.tun)


def status(settings: RouterSettings | None = None) -> dict[str, object]:
    """Describe the router's current state (read-only)."""
    s = settings if settings is not None else RouterSettings()
    carrier: str | None
    try:
        carrier = Path("/sys/class/net", s.tun, "carrier").read_text().strip()
    except OSError:
        carrier = None
    route = ip("route", "show", "table", str(s.table), check=False).stdout
    return {
        "ip_forward": read_sysctl("net/ipv4/ip_forward"),
        "rp_filter_all": read_sysctl("net/ipv4/conf/all/rp_filter"),
        "send_redirects_all": read_sysctl("net/ipv4/conf/all/send_redirects"),
        "tun_present": link_exists(s.tun) and is_tun(s.tun),
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
