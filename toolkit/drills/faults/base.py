"""One fault, one class: the `FaultKind` interface, the `Fault` record and the registry of kinds.

Jepsen's nemesis shape (`nemesis.clj`): each kind of fault is one class that resolves
its target from the topology, injects and heals itself through a `Backend`, names the
`kgt analyze` scenario it is an instance of, narrows the bounds a client is held to, and
adds the expectations only it has. `Fault` is the record of one fault (its kind and
target) as the history, the plan and report.json carry it; `kind_of(fault)` finds its
class. The registry generates the `kgt drill` sub-commands and `kgt drill all`'s set:
adding a fault is adding one class with `@register`.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from toolkit.errors import UsageError

if TYPE_CHECKING:
    from toolkit.drills.backend import Backend
    from toolkit.drills.checker.facts import Facts
    from toolkit.drills.faults.analysis import Bounds, Prediction
    from toolkit.drills.verdicts import Expectation
    from toolkit.topology.model import Topology

Echo = Callable[[str], None]
# A click option decorator (`click.option(...)`): a fault's own command-line options.
OptionDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class Fault:
    """One fault: its kind and target (a region, a host, or a WAN condition)."""

    kind: str
    region: str | None = None
    host: str | None = None
    rtt: float | None = None  # wan-degrade: seconds
    between: tuple[str, str] | None = None  # wan-degrade: only between these regions
    kill: bool = False  # proxy-loss: kill -9 instead of a graceful stop

    def describe(self) -> str:
        """One line for people: `region-partition r3`, `node-loss r2-db1`, …"""
        return kind_of(self).describe()

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        data = asdict(self)
        data["between"] = list(self.between) if self.between else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Inverse of `to_json`."""
        between = data.get("between")
        return cls(
            kind=str(data["kind"]),
            region=data.get("region"),
            host=data.get("host"),
            rtt=data.get("rtt"),
            between=(str(between[0]), str(between[1])) if between else None,
            kill=bool(data.get("kill")),
        )

    @property
    def regions(self) -> tuple[str, ...]:
        """Regions the fault touches directly (watched closely by the monitors)."""
        if self.between:
            return self.between
        return (self.region,) if self.region else ()


@dataclass(frozen=True)
class Target:
    """What the command line (or a caller) asked for; None: the kind's default."""

    region: str | None = None
    host: str | None = None
    rtt: float | None = None
    between: tuple[str, str] | None = None
    kill: bool = False


@dataclass(frozen=True)
class Limits:
    """What the configuration says, for a fault kind to derive its gap bounds from (seconds)."""

    regions: tuple[str, ...]
    haproxy_detection: float  # inter × fall of the proxies
    galera_detection: float  # evs.suspect_timeout + evs.install_timeout
    vrrp_failover: float  # keepalived master-down interval
    slack: float  # for the client to notice
    # A request a moved VIP leaves behind hangs until the client gives up (the drill's clients:
    # WorkloadSettings.timeout); the reconnect may then need one TCP SYN retransmission, until
    # the client's ARP entry follows the VIP (a gratuitous ARP inside the 1 s ARP locktime is
    # ignored; keepalived's second burst comes 1 s later).
    client_timeout: float
    syn_retransmit: float = 1.0  # Linux's initial TCP retransmission timeout

    @property
    def quiet(self) -> float:
        """The gap allowed where the fault leaves a region alone: HAProxy's detection bound."""
        return self.haproxy_detection + self.slack

    def everywhere(self, seconds: float) -> dict[str, float]:
        """The same bound for every region."""
        return dict.fromkeys(self.regions, seconds)


@dataclass(frozen=True)
class GapBounds:
    """Per region: the longest client-visible write and token gap while faulted; the VIP move bound."""

    write: dict[str, float]
    token: dict[str, float]
    vip_move: float | None = None


class FaultKind(abc.ABC):
    """One kind of fault, bound to one `Fault` record (`kind_of(fault)`).

    A subclass is registered under its name (`@register("NAME")`: the `fault.kind` value
    and the sub-command), its docstring is the sub-command's help, it sets `options` (its
    own click options, given to `target`) and implements `resolve`, `inject` and `heal`;
    the rest has defaults for a fault that is not a Galera failure and moves no VIP.
    """

    name: ClassVar[str]  # set by `register`
    help: ClassVar[str]  # the class docstring
    options: ClassVar[tuple[OptionDecorator, ...]] = ()
    standard: ClassVar[bool] = True  # in the set `kgt drill all` runs (registration order)
    vip_interval: ClassVar[float] = 1.0  # how often the monitors sample `ip addr` (s)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.help = inspect.cleandoc(cls.__doc__ or "")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault

    @property
    def region(self) -> str:
        """The fault's region (for a kind that has one)."""
        assert self.fault.region, f"{self.name} without a region"
        return self.fault.region

    @property
    def host(self) -> str:
        """The fault's host (for a kind that has one)."""
        assert self.fault.host, f"{self.name} without a host"
        return self.fault.host

    # -- from the command line -------------------------------------------------------------

    @classmethod
    def target(cls, **options: Any) -> Target:
        """The target the sub-command's own options ask for (UsageError for a malformed value)."""
        return Target(**options)

    @classmethod
    @abc.abstractmethod
    def resolve(cls, topology: Topology, target: Target) -> Fault:
        """The fault with its defaults filled in from the topology; UsageError for a bad target."""

    def describe(self) -> str:
        """One line for people."""
        return f"{self.name} {self.fault.region}"

    # -- what the analysis and the configuration say ---------------------------------------------

    def scenario(self) -> str | None:
        """The `kgt analyze` scenario the fault is an instance of (None: not a Galera failure)."""
        return None

    def predict(self, topology: Topology) -> Prediction:
        """What the analysis says will happen while the fault holds (its `scenario`, else all healthy)."""
        from toolkit.drills.faults.analysis import predict

        return predict(topology, self.fault)

    def bounds(self, topology: Topology, healthy: float = 90.0, rtt: float = 0.0) -> Bounds:
        """The time bounds the drill holds the site to (`gap_bounds` narrows them per fault)."""
        from toolkit.drills.faults.analysis import derive_bounds

        return derive_bounds(topology, self.fault, healthy=healthy, rtt=rtt)

    def gap_bounds(self, limits: Limits) -> GapBounds:
        """The gaps allowed while faulted: by default no region may stall past HAProxy's detection."""
        return GapBounds(limits.everywhere(limits.quiet), limits.everywhere(limits.quiet))

    # -- the nemesis -------------------------------------------------------------------------

    @abc.abstractmethod
    def inject(self, backend: Backend) -> dict[str, Any]:
        """Inject the fault; return what was done (the history's value)."""

    @abc.abstractmethod
    def heal(self, backend: Backend, echo: Echo) -> dict[str, Any]:
        """Undo everything `inject` may have done, even half-way (idempotent); return what was done."""

    # -- the checker -------------------------------------------------------------------------

    def moved_vips(self, injected: dict[str, Any]) -> list[str]:
        """The VIPs the injection should move to another host (from `inject`'s value)."""
        return []

    def expectations(self, facts: Facts) -> list[Expectation]:
        """The expectations only this fault has (after the common ones, before the correctness ones)."""
        return []


REGISTRY: dict[str, type[FaultKind]] = {}


K = TypeVar("K", bound=type[FaultKind])


def register(name: str) -> Callable[[K], K]:
    """Class decorator: make the class the fault kind `name` of `kgt drill` (a new name)."""

    def decorate(cls: K) -> K:
        if name in REGISTRY:
            raise ValueError(f"fault kind {name} is registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return decorate


@contextlib.contextmanager
def registered(name: str, cls: type[FaultKind]) -> Iterator[type[FaultKind]]:
    """Register `cls` as `name` inside the block only (a toy fault in a test)."""
    register(name)(cls)
    try:
        yield cls
    finally:
        del REGISTRY[name]


def kind_class(name: str) -> type[FaultKind]:
    """The class of the fault kind `name`; UsageError for an unknown one."""
    cls = REGISTRY.get(name)
    if cls is None:
        raise UsageError(f"unknown drill '{name}' (drills: {', '.join(REGISTRY)})")
    return cls


def kind_of(fault: Fault) -> FaultKind:
    """The fault's kind, bound to it."""
    return kind_class(fault.kind)(fault)
