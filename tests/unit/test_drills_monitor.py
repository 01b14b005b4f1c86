"""The drill's monitors: every sampler is its own history process, so samples pair correctly.

A proxy is sampled by two monitors at once (HAProxy's stats and the VIPs it holds). A history
process has one operation open at a time, so when both wrote as `mon-HOST` a completion of one
paired with the other's invocation: VIP samples were lost or read as stats, and the drill's VIP
move came out seconds late (1.9 s measured while the VIP had moved within 5 ms).
"""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

from toolkit.check.history import History, Op, pairs
from toolkit.drills.monitor import _Sampler
from toolkit.topology import Topology


class Echo(_Sampler):
    """A sampler whose observation says which monitor made it, after a short wait."""

    def sample(self) -> Any:
        time.sleep(0.003)
        return {"from": self.f}


def test_two_samplers_on_one_host_never_pair_each_others_samples(example: Topology) -> None:
    proxy = example.host("r1-proxy1")
    sink, stop = io.StringIO(), threading.Event()
    history = History(sink)
    samplers = [Echo(proxy, f, history, stop, 0.001) for f in ("haproxy", "vip")]
    for s in samplers:
        s.start()
    time.sleep(0.3)
    stop.set()
    for s in samplers:
        s.join(5)
    ops = [Op.from_json(json.loads(line)) for line in sink.getvalue().splitlines()]
    done = [(start, end) for start, end in pairs(ops) if end is not None]
    assert len(done) > 20
    for start, end in done:
        assert end.value == {"from": start.f}, (start, end)
        assert start.host == end.host == proxy.name
    assert {start.process for start, _ in done} == {"mon-r1-proxy1-haproxy", "mon-r1-proxy1-vip"}
