"""The history of a verify run: every operation's invocation and completion, in order.

A history is JSON lines (schema "kgt.check.history/1"), one event per line, written as
it happens so a killed run still leaves what it saw. Each operation appears twice: an
`invoke` line, then its completion by the same `process` (a process runs one
operation at a time, as in Jepsen):

    {"index": 17,                  # position in the history, from 0
     "process": "r2",              # who ran it: a region's worker, "setup" or "final"
     "region": "r2",               # the region the endpoint belongs to
     "host": "r2-db1",             # the endpoint: a Galera node or a VIP name
     "address": "127.0.2.11:3306",
     "type": "invoke|ok|fail|info",# info: outcome unknown (timeout, lost connection in COMMIT)
     "f": "incr|read|status|rtt",
     "value": ...,                 # see below
     "poll": 0,                    # reads: 0 for a verification's first read, n for its n-th re-read
     "time": 3.141593,             # seconds since the run started (monotonic clock)
     "wall": "2025-01-01T12:00:00.123456+00:00",
     "latency": 0.0021,            # completions: seconds since the invocation; null on invoke
     "error": "non-primary",       # fail/info: error class (certification-conflict, timeout, …)
     "message": "…"}               # fail/info: the error in one line

Values by `f`:

- `incr` — a transaction that locks the region's row and the shared row
  (`SELECT … FOR UPDATE`), writes each old value + 1, and commits. invoke:
  `{"rows": ["r2", "shared"]}`; ok: the values written and the node that served the
  transaction (`@@wsrep_node_name`, read in it), `{"r2": 41, "shared": 97, "node": "r2-db1"}`.
- `read` — all counters, read with `wsrep_dirty_reads=1`: ok `{"r1": 40, "r2": 41, …, "shared": 97}`.
- `status` — ok `{"status": "Primary", "size": 3, "state": "Synced", "conf_id": 7, "node": "r2-db1"}`
  (`node`: the node that answered).
- `rtt` — one TCP connect to a node: ok, value = seconds.

Processes "setup" (RTT samples, the initial read) and "final" (the status and a read of
every node at the end; `host` names the node) frame the regions' workers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from toolkit.errors import CheckError

SCHEMA = "kgt.check.history/1"
TYPES = ("invoke", "ok", "fail", "info")


@dataclass(frozen=True, slots=True)
class Op:
    """One line of the history."""

    index: int
    process: str
    region: str | None
    host: str
    address: str
    type: str
    f: str
    value: Any
    time: float
    wall: str = ""  # UTC wall-clock time, ISO 8601 ('' in hand-made histories)
    latency: float | None = None
    error: str | None = None
    message: str | None = None
    poll: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The line as a dict (fields in schema order)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Op:
        """Parse one line; unknown keys are ignored, missing optional keys default."""
        try:
            return cls(
                index=int(data["index"]),
                process=str(data["process"]),
                region=data.get("region"),
                host=str(data.get("host", "")),
                address=str(data.get("address", "")),
                type=str(data["type"]),
                f=str(data["f"]),
                value=data.get("value"),
                time=float(data["time"]),
                wall=str(data.get("wall", "")),
                latency=data.get("latency"),
                error=data.get("error"),
                message=data.get("message"),
                poll=data.get("poll"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a history operation: {exc}") from None


class History:
    """A thread-safe recorder of operations, optionally streaming each line to a file."""

    def __init__(self, sink: IO[str] | None = None) -> None:
        self.ops: list[Op] = []
        self._lock = threading.Lock()
        self._sink = sink
        self._start = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the history started."""
        return time.monotonic() - self._start

    def _append(self, **fields: Any) -> Op:
        with self._lock:
            op = Op(
                index=len(self.ops),
                time=round(self.elapsed(), 6),
                wall=datetime.now(UTC).isoformat(timespec="microseconds"),
                **fields,
            )
            self.ops.append(op)
            if self._sink is not None:
                self._sink.write(json.dumps(op.to_json(), separators=(",", ":")) + "\n")
                self._sink.flush()
            return op

    def invoke(
        self,
        process: str,
        f: str,
        *,
        region: str | None,
        host: str,
        address: str,
        value: Any = None,
        poll: int | None = None,
    ) -> Op:
        """Record that `process` starts an operation."""
        return self._append(
            process=process, region=region, host=host, address=address, type="invoke", f=f, value=value, poll=poll
        )

    def complete(
        self, invocation: Op, type_: str, value: Any = None, *, error: str | None = None, message: str | None = None
    ) -> Op:
        """Record the completion (`ok`, `fail` or `info`) of an invoked operation."""
        if type_ not in TYPES[1:]:
            raise ValueError(f"completion type must be ok, fail or info, not {type_!r}")
        with self._lock:
            now = round(self.elapsed(), 6)
        return self._append(
            process=invocation.process,
            region=invocation.region,
            host=invocation.host,
            address=invocation.address,
            type=type_,
            f=invocation.f,
            value=value,
            latency=round(now - invocation.time, 6),
            error=error,
            message=message,
            poll=invocation.poll,
        )


def write(ops: Iterable[Op], path: Path) -> None:
    """Write a whole history to `path` (JSON lines)."""
    with path.open("w", encoding="utf-8") as handle:
        for op in ops:
            handle.write(json.dumps(op.to_json(), separators=(",", ":")) + "\n")


def read(path: Path) -> list[Op]:
    """Read a history file; a malformed line is a CheckError naming its line number."""
    ops = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    ops.append(Op.from_json(json.loads(line)))
                except ValueError as exc:
                    raise CheckError(f"{path}:{number}: {exc}") from None
    except OSError as exc:
        raise CheckError(f"{path}: cannot read history: {exc.strerror or exc}") from None
    return ops


def pairs(ops: Iterable[Op]) -> Iterator[tuple[Op, Op | None]]:
    """Each invocation with its completion (None if the history ends first), in invocation order.

    Completions pair with the open invocation of the same process; a completion without
    one is ignored (a truncated or hand-edited history).
    """
    open_ops: dict[str, Op] = {}
    done: dict[int, Op] = {}
    order: list[Op] = []
    for op in ops:
        if op.type == "invoke":
            open_ops[op.process] = op
            order.append(op)
        else:
            start = open_ops.pop(op.process, None)
            if start is not None:
                done[start.index] = op
    for start in order:
        yield start, done.get(start.index)


def reindex(ops: Iterable[Op]) -> list[Op]:
    """The ops renumbered from 0 in the order given (for histories built by hand in tests)."""
    return [replace(op, index=i) for i, op in enumerate(ops)]


@dataclass(frozen=True)
class Done:
    """An operation: its invocation and completion (None if the history ended first)."""

    start: Op
    end: Op | None

    @property
    def type(self) -> str:
        """ok | fail | info | pending."""
        return self.end.type if self.end else "pending"

    @property
    def t0(self) -> float:
        """Invocation time."""
        return self.start.time

    @property
    def t1(self) -> float:
        """Completion time (inf when pending)."""
        return self.end.time if self.end else float("inf")

    @property
    def value(self) -> Any:
        """The completion's value."""
        return self.end.value if self.end else None

    @property
    def values(self) -> dict[str, int]:
        """The completion's counters (`{row: value}`), {} when it carries none."""
        value = self.value
        return {str(k): int(v) for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else {}
