"""The nemesis: injects a fault through a backend and heals it, recording both in the history.

Jepsen's shape: the nemesis is a process of its own ("nemesis") whose operations are
`inject` and `heal`, each an invocation and a completion (ok, or fail with the error)
with what it did as the value. What to do is the fault kind's (`faults.kind_of`); its
`heal` undoes everything `inject` might have done, even half-way, so it is always safe
to call in a `finally`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from toolkit.check.history import History
from toolkit.drills.backend import Backend
from toolkit.drills.faults import Fault, kind_of

PROCESS = "nemesis"
HEAL_ATTEMPTS = 3  # a heal that fails is tried again (its steps are idempotent) this many times in all
HEAL_PAUSE = 2.0  # seconds between two heal attempts
Echo = Callable[[str], None]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


class Nemesis:
    """Injects and heals one fault."""

    def __init__(
        self, backend: Backend, fault: Fault, history: History, echo: Echo, heal_pause: float | None = None
    ) -> None:
        self.backend, self.fault, self.history, self.echo = backend, fault, history, echo
        self.topology = backend.topology
        self.kind = kind_of(fault)
        self.heal_pause = HEAL_PAUSE if heal_pause is None else heal_pause

    def _record(
        self, f: str, action: Callable[[], dict[str, Any]], failed: Callable[[Exception], str] = _one_line
    ) -> dict[str, Any]:
        op = self.history.invoke(
            PROCESS, f, region=self.fault.region, host=self.fault.host or "", address="", value=self.fault.to_json()
        )
        try:
            value = action()
        except Exception as exc:
            self.history.complete(op, "fail", error=exc.__class__.__name__, message=failed(exc))
            raise
        self.history.complete(op, "ok", value)
        return value

    def inject(self) -> dict[str, Any]:
        """Inject the fault (raises if the backend fails; heal anyway)."""
        return self._record("inject", lambda: self.kind.inject(self.backend))

    def heal(self) -> dict[str, Any]:
        """Undo the fault (idempotent), up to `HEAL_ATTEMPTS` times; raises only after the last attempt.

        One `heal` operation in the history however many attempts it took: a heal that
        needed more than one says so in its value (`attempts`, and the `errors` before).
        """
        errors: list[str] = []

        def failed(exc: Exception) -> str:
            return _one_line(exc) if len(errors) < 2 else f"{len(errors)} attempts, the last: {_one_line(exc)}"

        return self._record("heal", lambda: self._heal(errors), failed)

    def _heal(self, errors: list[str]) -> dict[str, Any]:
        while True:
            try:
                value = self.kind.heal(self.backend, self.echo)
            except Exception as exc:
                errors.append(f"{exc.__class__.__name__}: {_one_line(exc)}")
                if len(errors) >= HEAL_ATTEMPTS:
                    raise
                self.echo(f"heal attempt {len(errors)} of {HEAL_ATTEMPTS} failed: {errors[-1]}; again")
                time.sleep(self.heal_pause)
                continue
            return {**value, "attempts": len(errors) + 1, "errors": errors} if errors else value
