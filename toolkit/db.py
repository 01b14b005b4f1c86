"""Connections to Galera nodes and VIPs: pymysql with short, explicit deadlines.

Every caller gets the same timeouts and error classification, so a hung or partitioned
node shows up as a one-line result instead of a hang or a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from toolkit import tlsclient

# MariaDB/MySQL error codes kgt treats specially.
ER_UNKNOWN_COM_ERROR = 1047  # WSREP has not yet prepared node for application use (non-Primary)
ER_LOCK_DEADLOCK = 1213  # certification conflict in Galera
ER_ACCESS_DENIED = 1045
CR_CONN_HOST_ERROR = 2003  # cannot connect
CR_SERVER_LOST = 2013  # lost connection during query (timeout, partition)


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect."""

    host: str
    port: int
    user: str
    password: str
    database: str | None = None
    ca: Path | None = None  # TLS, the server checked against this CA and by `host`; None: plaintext


def connect(
    endpoint: Endpoint,
    *,
    connect_timeout: float = 2.0,
    read_timeout: float = 5.0,
    write_timeout: float = 5.0,
    autocommit: bool = True,
    dirty_reads: bool = False,
) -> Any:
    """Open a connection; `dirty_reads` lets a non-Primary node answer reads."""
    init = "SET SESSION wsrep_dirty_reads=1" if dirty_reads else None
    return pymysql.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=endpoint.password,
        database=endpoint.database,
        connect_timeout=max(0.1, connect_timeout),
        read_timeout=read_timeout,
        write_timeout=write_timeout,
        autocommit=autocommit,
        init_command=init,
        ssl=tlsclient.context(endpoint.ca) if endpoint.ca is not None else None,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.Cursor,
    )


def wsrep_status(conn: Any) -> dict[str, str]:
    """`SHOW GLOBAL STATUS LIKE 'wsrep%'` as a dict of lower-case names to text values."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep%%'")
        return {str(k).lower(): "" if v is None else str(v) for k, v in cur.fetchall()}


def error_code(exc: BaseException) -> int | None:
    """The MariaDB error number of a pymysql exception, if it has one."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def classify(exc: BaseException) -> str:
    """A short class name for an error, for histories and one-line results."""
    code = error_code(exc)
    return {
        ER_UNKNOWN_COM_ERROR: "non-primary",
        ER_LOCK_DEADLOCK: "certification-conflict",
        ER_ACCESS_DENIED: "access-denied",
        CR_CONN_HOST_ERROR: "unreachable",
        CR_SERVER_LOST: "connection-lost",
    }.get(code or -1, f"mysql-{code}" if code else exc.__class__.__name__)
