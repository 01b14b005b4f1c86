"""The nemesis: injects a fault through a backend and heals it, recording both in the history.

Jepsen's shape: the nemesis is a process of its own ("nemesis") whose operations are
`inject` and `heal`, each an invocation and a completion (ok, or fail with the error)
with what it did as the value. `heal` undoes everything `inject` might have done, even
half-way, so it is always safe to call in a `finally`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit.check.history import History
from toolkit.drills.backend import Backend
from toolkit.drills.faults import Fault
from toolkit.lab.network import WanSpec

PROCESS = "nemesis"
Echo = Callable[[str], None]


class Nemesis:
    """Injects and heals one fault."""

    def __init__(self, backend: Backend, fault: Fault, history: History, echo: Echo) -> None:
        self.backend, self.fault, self.history, self.echo = backend, fault, history, echo
        self.topology = backend.topology

    def _record(self, f: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        op = self.history.invoke(
            PROCESS, f, region=self.fault.region, host=self.fault.host or "", address="", value=self.fault.to_json()
        )
        try:
            value = action()
        except Exception as exc:
            self.history.complete(op, "fail", error=exc.__class__.__name__, message=" ".join(str(exc).split())[:300])
            raise
        self.history.complete(op, "ok", value)
        return value

    # -- inject ----------------------------------------------------------------------------

    def inject(self) -> dict[str, Any]:
        """Inject the fault (raises if the backend fails; heal anyway)."""
        return self._record("inject", self._inject)

    def _inject(self) -> dict[str, Any]:
        f, b = self.fault, self.backend
        if f.kind == "region-partition":
            assert f.region
            b.cut(f.region)
            return {"cut": f.region}
        if f.kind == "region-loss":
            assert f.region
            hosts = list(self.topology.region(f.region).hosts)
            b.stop_hosts(hosts)
            return {"stopped": [h.name for h in hosts]}
        if f.kind == "keystone-loss":
            assert f.region
            for host in self.topology.region(f.region).with_role("keystone"):
                b.stop_service(host, "keystone")
            hosts = list(self.topology.region(f.region).with_role("keystone"))
            return {"stopped": [f"{h.name}/keystone" for h in hosts]}
        if f.kind == "proxy-loss":
            assert f.host
            host = self.topology.host(f.host)
            held = b.vips_held(host)
            stopped = []
            # keepalived first, so a graceful stop hands the VIP over before HAProxy stops answering.
            for service in ("keepalived", "haproxy"):
                if host.has(service):
                    b.stop_service(host, service, kill=f.kill)
                    stopped.append(f"{host.name}/{service}")
            return {"stopped": stopped, "vips": held, "kill": f.kill}
        if f.kind == "node-loss":
            assert f.host
            b.crash_node(self.topology.host(f.host))
            return {"killed": f"{f.host}/mariadb"}
        if f.kind == "wan-degrade":
            spec = WanSpec(rtt=f.rtt or 0.0, between=f.between)
            b.degrade_wan(spec)
            return {"wan": spec.describe()}
        raise ValueError(f"unknown fault kind {f.kind}")

    # -- heal ------------------------------------------------------------------------------

    def heal(self) -> dict[str, Any]:
        """Undo the fault (idempotent); raises only after trying every step."""
        return self._record("heal", self._heal)

    def _heal(self) -> dict[str, Any]:
        f, b = self.fault, self.backend
        if f.kind in ("region-partition", "wan-degrade"):
            b.heal_network()
            return {"network": "healed"}
        if f.kind == "region-loss":
            assert f.region
            steps = b.start_hosts(list(self.topology.region(f.region).hosts), self.echo)
            return {
                "started": [h.name for h in self.topology.region(f.region).hosts],
                "steps": steps,
                "rejoin": steps.get("rejoin", {}),
            }
        if f.kind == "keystone-loss":
            assert f.region
            hosts = self.topology.region(f.region).with_role("keystone")
            for host in hosts:
                b.start_service(host, "keystone")
            return {"started": [f"{h.name}/keystone" for h in hosts]}
        if f.kind == "proxy-loss":
            assert f.host
            host = self.topology.host(f.host)
            errors = []
            for service in ("haproxy", "keepalived"):
                if host.has(service):
                    try:
                        b.start_service(host, service)
                    except Exception as exc:  # try the other service too, then report
                        errors.append(f"{service}: {exc}")
            if errors:
                raise RuntimeError("; ".join(errors))
            return {"started": [f"{host.name}/haproxy", f"{host.name}/keepalived"]}
        if f.kind == "node-loss":
            assert f.host
            rejoin = b.restart_node(self.topology.host(f.host))
            return {"rejoin": {f.host: rejoin}}
        raise ValueError(f"unknown fault kind {f.kind}")
