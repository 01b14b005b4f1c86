"""What a Galera node's wsrep status means for HAProxy: the values, the verdict per path, and the query.

`verdict()` is pure and decides every answer of the endpoint; `probe()` is the only code that
talks to MariaDB (one short connection per call, credentials from a my.cnf-style file).

Choices, so that HAProxy sends traffic only where it is safe:

- `/write` (and `/`) is 200 only on a Primary, Synced (wsrep_local_state=4), ready node.
- `/read` is also 200 on a Primary node that is Donor/Desynced (state 2), unless
  `donor_reads=False`: a mariabackup donor, or a node desynced for a backup, still holds the
  data of the Primary component, only possibly behind it (flow control is off while desynced).
- `/read` on a non-Primary node is 200 only when the server has the global
  `wsrep_dirty_reads=ON` (so the clients' sessions inherit it) and a `SELECT 1` works in a
  session with `wsrep_dirty_reads=1`; never while the node is Joining (its data is being
  replaced by a state transfer). Note that MariaDB answers `SELECT 1` even without dirty reads,
  so the probe proves the server answers; the global setting is what lets clients read tables.
- The maintenance file wins over everything; an unreachable database is 503 on every path.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pymysql

from toolkit.db import error_code, wsrep_status
from toolkit.wsrep import DONOR_DESYNCED, JOINING, PRIMARY, STATE_NAMES, SYNCED, NodeState

WRITE = "/write"
READ = "/read"
STATUS = "/status"
# `/` is what a bare `option httpchk` asks for: treat it as the strict check.
CHECK_PATHS = {"/": WRITE, WRITE: WRITE, READ: READ}

DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"

# SHOW needs no privilege beyond USAGE and is answered even on a non-Primary node
# (the status half is `toolkit.db.wsrep_status`).
VARIABLES_SQL = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('wsrep_on', 'wsrep_dirty_reads')"


@dataclass(frozen=True)
class WsrepValues:
    """The wsrep status and variables of one node, as read in one probe."""

    cluster_status: str
    local_state: int
    local_state_comment: str
    ready: bool
    connected: bool
    cluster_size: int
    wsrep_on: bool
    dirty_reads: bool
    # None: not tried (the node is Primary, or dirty reads are off); else whether it worked.
    dirty_read_ok: bool | None = None

    @classmethod
    def from_rows(
        cls, status: dict[str, str], variables: dict[str, str], dirty_read_ok: bool | None = None
    ) -> WsrepValues:
        """Build from `SHOW GLOBAL STATUS` / `SHOW GLOBAL VARIABLES` rows (name → value)."""
        return cls.from_state(NodeState.from_rows(status, variables), dirty_read_ok)

    @classmethod
    def from_state(cls, state: NodeState, dirty_read_ok: bool | None = None) -> WsrepValues:
        """The values of a parsed node state: a value the node did not give is "unknown", 0, "" or False."""
        return cls(
            cluster_status=state.cluster_status or "unknown",
            local_state=state.local_state or 0,
            local_state_comment=state.local_state_comment or "",
            ready=bool(state.ready),
            connected=bool(state.connected),
            cluster_size=state.cluster_size or 0,
            wsrep_on=bool(state.wsrep_on),
            dirty_reads=bool(state.dirty_reads),
            dirty_read_ok=dirty_read_ok,
        )

    @property
    def primary(self) -> bool:
        """Whether the node is in the Primary component (the one that may commit)."""
        return self.cluster_status == PRIMARY

    @property
    def state_text(self) -> str:
        """`2 Donor/Desynced`: the number HAProxy users grep for and the name people read."""
        name = self.local_state_comment or STATE_NAMES.get(self.local_state, "unknown")
        return f"{self.local_state} {name}"


@dataclass(frozen=True)
class Unreachable:
    """The probe got no wsrep values: the error, in one short line."""

    error: str


Probe = WsrepValues | Unreachable


class Verdict(NamedTuple):
    """The answer to one check: the HTTP status and the one-line reason after it."""

    code: int
    reason: str

    @property
    def line(self) -> str:
        """`503 not Primary (...)`: the body of the answer."""
        return f"{self.code} {self.reason}"


def _down(reason: str) -> Verdict:
    return Verdict(503, reason)


def verdict(probe: Probe | None, path: str, maintenance: Path | None = None, *, donor_reads: bool = True) -> Verdict:
    """Decide the answer for `path` (`/`, `/write` or `/read`).

    `maintenance` is the maintenance file when it exists. `probe` may be None only then:
    the database need not be asked when the answer is 503 anyway.
    """
    kind = CHECK_PATHS.get(path)
    if kind is None:
        raise ValueError(f"no verdict for path {path!r}")
    if maintenance is not None:
        return _down(f"maintenance ({maintenance} exists)")
    if probe is None:
        raise ValueError("a probe is needed unless the node is in maintenance")
    if isinstance(probe, Unreachable):
        return _down(f"database unreachable: {probe.error}")
    if not probe.wsrep_on:
        return _down("not a Galera node (wsrep_on=OFF)")
    return _write(probe) if kind == WRITE else _read(probe, donor_reads)


def _write(v: WsrepValues) -> Verdict:
    if not v.primary:
        return _down(f"not Primary (wsrep_cluster_status={v.cluster_status})")
    if v.local_state != SYNCED:
        return _down(f"not Synced (wsrep_local_state={v.state_text})")
    if not v.ready:
        return _down("not ready (wsrep_ready=OFF)")
    return Verdict(200, "OK Primary Synced")


def _read(v: WsrepValues, donor_reads: bool) -> Verdict:
    if v.primary:
        if v.local_state == SYNCED or (donor_reads and v.local_state == DONOR_DESYNCED):
            if not v.ready:
                return _down("not ready (wsrep_ready=OFF)")
            if v.local_state == SYNCED:
                return Verdict(200, "OK Primary Synced")
            return Verdict(200, "OK Primary Donor/Desynced (reads may lag)")
        return _down(f"not Synced (wsrep_local_state={v.state_text})")
    where = f"wsrep_cluster_status={v.cluster_status}"
    if not v.dirty_reads:
        return _down(f"not Primary ({where}, wsrep_dirty_reads=OFF)")
    if v.local_state == JOINING:
        return _down(f"not Primary ({where}, wsrep_local_state={v.state_text})")
    if not v.dirty_read_ok:
        return _down(f"not Primary ({where}, dirty read failed)")
    return Verdict(200, f"OK dirty reads ({where}, wsrep_dirty_reads=ON)")


def status_document(probe: Probe, maintenance: Path | None, *, donor_reads: bool = True) -> tuple[int, dict[str, Any]]:
    """The `/status` answer: 200 with the raw values and both verdicts, 503 if the DB did not answer.

    Schema (stable): `{"maintenance": path | null, "error": str | null, "wsrep": {...} | null,
    "verdicts": {"/write": {"code", "reason"}, "/read": {"code", "reason"}}}`; `wsrep` has the
    fields of `WsrepValues`. The maintenance file makes it 503 too, like every path.
    """
    verdicts = {path: verdict(probe, path, maintenance, donor_reads=donor_reads)._asdict() for path in (WRITE, READ)}
    reachable = isinstance(probe, WsrepValues)
    document = {
        "maintenance": str(maintenance) if maintenance else None,
        "error": probe.error if isinstance(probe, Unreachable) else None,
        "wsrep": asdict(probe) if isinstance(probe, WsrepValues) else None,
        "verdicts": verdicts,
    }
    return (200 if reachable and maintenance is None else 503), document


@dataclass(frozen=True)
class DbSettings:
    """How to reach the local MariaDB; user and password stay in the defaults file."""

    defaults_file: Path
    # Used only when the defaults file names neither `socket` nor `host`.
    socket: str | None = DEFAULT_SOCKET
    connect_timeout: float = 1.0
    read_timeout: float = 2.0

    @classmethod
    def from_defaults_file(cls, path: Path, *, connect_timeout: float = 1.0, read_timeout: float = 2.0) -> DbSettings:
        """Read `[client]` of `path` once to decide whether the default socket is needed.

        pymysql prefers an explicit `unix_socket` argument over the file, and uses TCP to
        localhost when there is neither, so the Debian socket is passed only as a fallback.
        Raises OSError or configparser.Error when the file cannot be read.
        """
        parser = configparser.RawConfigParser(allow_no_value=True, strict=False)
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
        names = set(parser.options("client")) if parser.has_section("client") else set()
        socket = None if names & {"socket", "host"} else DEFAULT_SOCKET
        return cls(path, socket, connect_timeout, read_timeout)


def describe(exc: BaseException) -> str:
    """One short line for an error: `Can't connect to ... (2002)`; never a password."""
    code = error_code(exc)
    if isinstance(exc, pymysql.MySQLError) and code is not None and len(exc.args) == 2:
        text = f"{exc.args[1]} ({code})"
    else:
        text = str(exc) or type(exc).__name__
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= 200 else text[:197] + "..."


def _connect(settings: DbSettings) -> Any:
    kwargs: dict[str, Any] = {
        "read_default_file": str(settings.defaults_file),
        "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
        "write_timeout": settings.read_timeout,
        "autocommit": True,
        "program_name": "kgt-health",
    }
    if settings.socket:
        kwargs["unix_socket"] = settings.socket
    return pymysql.connect(**kwargs)


def _dirty_read_works(cursor: Any) -> bool:
    try:
        cursor.execute("SET SESSION wsrep_dirty_reads=1")
        cursor.execute("SELECT 1")
        return bool(cursor.fetchone() == (1,))
    except pymysql.MySQLError:
        return False


def fetch_values(settings: DbSettings) -> WsrepValues:
    """Query the node once on a fresh connection; raises pymysql or OS errors."""
    connection = _connect(settings)
    try:
        status = wsrep_status(connection)
        with connection.cursor() as cursor:
            cursor.execute(VARIABLES_SQL)
            variables = {str(name): str(value) for name, value in cursor.fetchall()}
            state = NodeState.from_rows(status, variables)
            dirty_read_ok = None
            if not state.primary and state.dirty_reads:
                dirty_read_ok = _dirty_read_works(cursor)
    finally:
        if connection.open:  # after a timeout pymysql has closed it already
            connection.close()
    return WsrepValues.from_state(state, dirty_read_ok)


def probe(settings: DbSettings) -> Probe:
    """`fetch_values`, with any failure turned into `Unreachable` (a health check never raises)."""
    try:
        return fetch_values(settings)
    except Exception as exc:  # whatever went wrong, the node is not usable
        return Unreachable(describe(exc))
