"""The probe edge: one deadline, one status line with perfdata, one exit code.

Every probe builds a `nagiosplugin.Check` (resource → metric → context → result →
summary) and hands it to `execute`, which runs it under the `-t` deadline and turns
whatever happens into the plugin format:

    KGT <PROBE> OK|WARNING|CRITICAL|UNKNOWN - <text> | <perfdata>

We use nagiosplugin's model but not its `Runtime`: that one arms `signal.alarm` with
whole seconds (`-t 0.5` would mean no timeout), prints a traceback in verbose mode,
writes `UNKNOWN:` instead of `UNKNOWN -`, and calls `sys.exit` itself, which would
bypass the click edge of `kgt`.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import nagiosplugin

from toolkit.errors import KgtError, ProbeTimeout, ProbeUnknown, TopologyError

if TYPE_CHECKING:
    from toolkit.topology.model import Topology

EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


@dataclass
class Deadline:
    """The time left of the `-t` budget, for per-operation socket timeouts."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        """Seconds left, never below a few milliseconds."""
        return max(0.005, self.seconds - (time.monotonic() - self.start))

    def budget(self) -> float:
        """A per-operation timeout that ends before the deadline.

        Leaves a margin so a hung target is reported as that target's finding (with its
        name) rather than as the probe-wide timeout.
        """
        left = self.remaining()
        return max(0.005, min(left - 0.2, left * 0.9))


@dataclass(frozen=True)
class ProbeArgs:
    """What every probe may be given besides its own options: budget, verbosity, thresholds, inputs.

    `topology` is the first argument of `kgt probe X`; `user`, `password_file` and
    `secrets_path` are there for probes that log in somewhere.
    """

    timeout: float
    verbose: int = 0
    topology: Path | None = None
    secrets_path: Path | None = None
    user: str = ""
    password_file: Path | None = None
    warning: str | None = None
    critical: str | None = None
    tls_ca: Path | None = None  # --ca: the CA bundle servers are verified with

    @classmethod
    def split(cls, opts: dict[str, Any]) -> tuple[ProbeArgs, dict[str, Any]]:
        """The shared arguments out of click's parameters, and the probe's own ones."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in opts.items() if k in names}), {k: v for k, v in opts.items() if k not in names}

    def model(self) -> Topology | None:
        """The topology, loaded and validated, if one was given."""
        from toolkit.probes import targets

        return targets.load(self.topology) if self.topology is not None else None

    def required_model(self) -> Topology:
        """The topology of a probe that cannot run without one (click makes sure it was given)."""
        model = self.model()
        if model is None:
            raise ProbeUnknown("no topology given")
        return model

    def ca_file(self, topology: Topology | None) -> Path | None:
        """`--ca`, else the topology's CA bundle on a TLS site, else None (plaintext); UNKNOWN if it is missing."""
        ca = self.tls_ca or (topology.client_ca if topology is not None else None)
        if ca is not None and not ca.is_file():
            raise ProbeUnknown(f"CA bundle {ca}: no such file (--ca, or the topology's tls: section)")
        return ca

    def password(self, topology: Topology | None, secret: str) -> str:
        """`--password-file`'s first line, else the secret `secret` (`--secrets` or the topology's file)."""
        from toolkit.probes import targets

        return targets.password(self.password_file, topology, self.secrets_path, secret)


def line(name: str, state: str, text: str, perfdata: str = "") -> str:
    """The status line: `KGT GALERA CRITICAL - text | perfdata` (no `|` or newline in text)."""
    text = " ".join(text.replace("|", "/").split())
    out = f"{name.upper()} {state}" + (f" - {text}" if text else "")
    return out + (f" | {perfdata}" if perfdata else "")


def unknown(name: str, reason: str) -> str:
    """The status line of a probe that could not run: `KGT GALERA UNKNOWN - reason`.

    The one place that says UNKNOWN: the messages themselves carry only the reason.
    """
    return line(name, "UNKNOWN", reason)


def _state_name(state: Any) -> str:
    return {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"}.get(str(state), "UNKNOWN")


_EXPONENT = re.compile(r"^(?P<label>'[^']*'|[^=]*)=(?P<value>-?[0-9.]+[eE][-+]?[0-9]+)(?P<rest>.*)$")


def plain_number(item: str) -> str:
    """A perfdata item with its value in plain notation: the plugin API has no exponents.

    nagiosplugin prints floats with `%s`, so 3.4e-06 would reach the monitoring system as is.
    """
    match = _EXPONENT.match(item)
    if not match:
        return item
    value = f"{float(match['value']):.12f}".rstrip("0").rstrip(".") or "0"
    return f"{match['label']}={value}{match['rest']}"


def render(check: nagiosplugin.Check, verbose: int = 0) -> tuple[str, int]:
    """Output text and exit code of a check that has run.

    Perfdata always stays on the status line (monitoring systems that read only the
    first line still graph it); `-v` adds one line per result.
    """
    state = _state_name(check.state)
    perfdata = " ".join(plain_number(p) for p in check.perfdata if p)
    lines = [line(check.name, state, check.summary_str, perfdata)]
    if verbose:
        for result in check.results:
            lines.append(f"{_state_name(result.state)}: {result}".replace("|", "/"))
    return "\n".join(lines) + "\n", EXIT[state]


def reason(exc: BaseException) -> str:
    """The useful end of a network error: `[Errno 111] Connection refused`, else its class."""
    import re

    seen: set[int] = set()
    current: BaseException | None = exc
    texts = []
    while current is not None and id(current) not in seen:  # follow wrapped errors to the socket error
        seen.add(id(current))
        texts.append(str(current))
        inner = getattr(current, "reason", None) or (current.args[0] if current.args else None)
        current = inner if isinstance(inner, BaseException) else current.__cause__ or current.__context__
    for text in reversed(texts):
        found = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
        if found:
            return found.group(0).strip()
    return exc.__class__.__name__


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise ProbeTimeout()


def failure_text(exc: BaseException) -> str:
    """One line for an error that stopped a probe."""
    if isinstance(exc, TopologyError):
        more = len(exc.problems) - 1
        return str(exc.problems[0]) + (f" (and {more} more problems)" if more > 0 else "")
    if isinstance(exc, KgtError):  # ProbeUnknown included
        return str(exc)
    return f"internal error: {exc.__class__.__name__}: {exc}"


def execute(name: str, build: Callable[[Deadline], nagiosplugin.Check], *, timeout: float, verbose: int = 0) -> int:
    """Build and run a check under the deadline, print the result, return the exit code.

    Nothing escapes as a traceback: the deadline, a ProbeUnknown, a KgtError or any other
    exception becomes one UNKNOWN line.
    """
    deadline = Deadline(timeout)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        check = build(deadline)
        check()
        text, code = render(check, verbose)
    except ProbeTimeout:
        text, code = unknown(name, f"no result within {timeout:g}s (-t)") + "\n", 3
    except KeyboardInterrupt:
        text, code = unknown(name, "interrupted") + "\n", 3
    except Exception as exc:  # the probe edge: every error is UNKNOWN, never a traceback
        text, code = unknown(name, failure_text(exc)) + "\n", 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    sys.stdout.write(text)
    sys.stdout.flush()
    return code
