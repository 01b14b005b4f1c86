"""Galera EVS timeouts: derived from the WAN round trip, and the limits Galera enforces.

Galera checks the EVS timeouts against each other when gcomm starts and refuses to start
a node whose values break a limit ("parameter 'evs.…' value … is out of range"), so a
topology whose values would do that is an error at `kgt validate`, not at 3 a.m. The
limits are those of Galera 26.4 (Debian 12's galera-4), found by asking it:
tests/unit/test_evs.py runs the real library (garbd) on every edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from toolkit.topology.model import Host, Topology

# Galera's stock EVS timeouts, in seconds: never go below these (measured: aggressive
# timeouts made a cluster on 2 cores fragment and lose quorum for good).
STOCK_EVS = {
    "keepalive_period": 1.0,
    "suspect_timeout": 5.0,
    "inactive_timeout": 15.0,
    "install_timeout": 7.5,
}
# evs.inactive_check_period: kgt leaves Galera's default (PT0.5S), and Galera requires it
# to be at most half of suspect_timeout.
INACTIVE_CHECK_PERIOD = 0.5


def _ceil(value: float) -> int:
    """`math.ceil` that ignores binary noise: 0.7 * 10 is 7.000000000000001, and must give 7."""
    return math.ceil(round(value, 9))


def derived(rtt: float) -> dict[str, float]:
    """The timeouts for a worst round trip of `rtt` seconds.

    Galera's WAN advice is that every timeout sits well above the worst round trip:
    keepalive ≥ 4 RTT, suspect ≥ 10 RTT and 5 keepalives, inactive ≥ 3 suspects,
    install = half of inactive; none below the stock values.
    """
    keepalive = max(STOCK_EVS["keepalive_period"], _ceil(rtt * 4 * 10) / 10)
    suspect = max(STOCK_EVS["suspect_timeout"], keepalive * 5, _ceil(rtt * 10))
    inactive = max(STOCK_EVS["inactive_timeout"], suspect * 3)
    return {
        "keepalive_period": keepalive,
        "suspect_timeout": suspect,
        "inactive_timeout": inactive,
        "install_timeout": max(STOCK_EVS["install_timeout"], inactive / 2),
    }


def explicit(host: Host) -> dict[str, float]:
    """The EVS timeouts the topology sets for `host` itself (the rest are derived)."""
    g = host.settings.galera
    values = {
        "keepalive_period": g.keepalive_period,
        "suspect_timeout": g.suspect_timeout,
        "inactive_timeout": g.inactive_timeout,
        "install_timeout": g.install_timeout,
    }
    return {key: value for key, value in values.items() if value is not None}


def evs_timeouts(topology: Topology, host: Host) -> dict[str, float]:
    """EVS timeouts for `host`: derived from the worst expected RTT unless set explicitly."""
    return {**derived(topology.worst_rtt), **explicit(host)}


@dataclass(frozen=True)
class EvsProblem:
    """A limit the timeouts of one host break; `keys` are the settings involved."""

    keys: tuple[str, ...]
    message: str
    severity: str  # error | warning


def problems(topology: Topology, host: Host) -> list[EvsProblem]:
    """What is wrong with `host`'s EVS timeouts (and send windows): errors Galera refuses, risks."""
    t = evs_timeouts(topology, host)
    keep, suspect, inactive, install = (
        t["keepalive_period"],
        t["suspect_timeout"],
        t["inactive_timeout"],
        t["install_timeout"],
    )
    out: list[EvsProblem] = []

    def error(keys: tuple[str, ...], message: str) -> None:
        out.append(EvsProblem(keys, message + " (Galera refuses to start the node)", "error"))

    if suspect < 2 * INACTIVE_CHECK_PERIOD:
        error(
            ("suspect_timeout",),
            f"evs.suspect_timeout {suspect:g}s is below twice evs.inactive_check_period ({INACTIVE_CHECK_PERIOD:g}s)",
        )
    if keep > suspect / 3:
        error(
            ("keepalive_period", "suspect_timeout"),
            f"evs.keepalive_period {keep:g}s is more than a third of evs.suspect_timeout {suspect:g}s",
        )
    if install < keep:
        error(
            ("install_timeout", "keepalive_period"),
            f"evs.install_timeout {install:g}s is below evs.keepalive_period {keep:g}s",
        )
    if install > inactive:
        error(
            ("install_timeout", "inactive_timeout"),
            f"evs.install_timeout {install:g}s is above evs.inactive_timeout {inactive:g}s",
        )
    g = host.settings.galera
    if g.user_window > g.send_window:
        error(
            ("user_send_window", "send_window"),
            f"evs.user_send_window {g.user_window} is above evs.send_window {g.send_window}",
        )
    if inactive < suspect:
        out.append(
            EvsProblem(
                ("inactive_timeout", "suspect_timeout"),
                f"evs.inactive_timeout {inactive:g}s is below evs.suspect_timeout {suspect:g}s: "
                "a silent node is dropped before the others can agree it is suspect",
                "warning",
            )
        )
    rtt = topology.worst_rtt
    if rtt > 0 and "suspect_timeout" in explicit(host) and suspect < 10 * rtt:
        out.append(
            EvsProblem(
                ("suspect_timeout",),
                f"evs.suspect_timeout {suspect:g}s is under 10 × the worst WAN RTT ({rtt * 1000:g} ms): "
                "a slow WAN moment can evict a healthy region",
                "warning",
            )
        )
    return out
