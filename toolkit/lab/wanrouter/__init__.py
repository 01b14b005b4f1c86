"""Userspace WAN emulator for the kgt Docker lab (stdlib only, imports nothing else of kgt).

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

The config file is JSON (see ``config``) and is re-read when it changes
(checked at most every 100 ms), so ``kgt lab wan`` changes the WAN by
rewriting it.  ``between: null`` means all pairs.  Rules apply in order; a
later rule overrides, for the pairs it names, the fields it sets (unset
fields keep their earlier value).  ``delay_ms`` is one-way, so RTT grows by
twice it.  An optional ``"router"`` object overrides :class:`RouterSettings`.

The router is fail-closed: while no ``run`` loop is attached the TUN device
has no carrier and cross-region traffic is dropped; ``teardown`` restores
direct forwarding.  In Docker the router needs ``--cap-add NET_ADMIN``,
``--device /dev/net/tun`` and, since /proc/sys is read-only there,
``--sysctl net.ipv4.ip_forward=1 --sysctl net.ipv4.conf.all.rp_filter=0
--sysctl net.ipv4.conf.default.rp_filter=0
--sysctl net.ipv4.conf.all.send_redirects=0
--sysctl net.ipv4.conf.default.send_redirects=0``
(``setup`` accepts read-only sysctls that already hold the wanted value).

Modules, pure ones first: ``regions`` (region map, packet classifier),
``rules`` (the rule table), ``config`` (the file), ``delay`` (the delay
queue), ``shaper``, ``schedule`` (when the loop wakes), ``watcher``; then the
system side: ``tun``, ``netsetup``, ``loop``, ``cli``.  Every module imports
only the standard library and its siblings (relative imports), which
``tests/unit/test_wanrouter_package.py`` checks.

Usage: ``python3 -m toolkit.lab.wanrouter {setup,run,teardown,status,check}``
(how the lab starts it), or ``python3 path/to/wanrouter ...`` with the package
folder alone, copied anywhere (``__main__`` then imports it under its folder name).
"""

from __future__ import annotations

from .cli import main
from .config import DEFAULT_CONFIG_PATH, RouterSettings, WanConfig, load_config, parse_config, write_config
from .delay import DelayQueue
from .errors import ConfigError, SetupError
from .loop import run
from .netsetup import netem_available, setup, status, teardown
from .regions import RegionMap, classify
from .rules import LinkParams, cut_region_rules
from .schedule import Ticker, wait_timeout
from .shaper import Shaper, ShaperStats
from .watcher import ConfigWatcher

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ConfigError",
    "ConfigWatcher",
    "DelayQueue",
    "LinkParams",
    "RegionMap",
    "RouterSettings",
    "SetupError",
    "Shaper",
    "ShaperStats",
    "Ticker",
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
    "wait_timeout",
    "write_config",
]
