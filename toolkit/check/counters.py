"""The verify workload's counters table: its name, creating it with its user, reading it, dropping it.

The table `SCHEMA.counters` holds one row per region plus `shared`; the user kgt_verify
gets SELECT, INSERT and UPDATE on each schema it is used with, nothing else. Both are
created through kgt_admin (`setup`, idempotent) and dropped by `cleanup`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from toolkit.accounts import ADMIN_USER, VERIFY_USER, verify_account
from toolkit.check import sessions
from toolkit.check.nodes import classify, one_line
from toolkit.check.sessions import Target
from toolkit.check.state import NETWORK_ERRORS
from toolkit.errors import CannotCheck, NothingReachable
from toolkit.topology.model import Topology

SCHEMA = "kgt_verify"  # the default of Options.schema and of the functions that take one
# A plain SQL identifier: it is written into statements unquoted.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,63}")
SHARED = "shared"


def counters_table(schema: str = SCHEMA) -> str:
    """`schema.counters`, once `schema` is known to be a plain SQL identifier (else UNKNOWN in one line)."""
    if not _IDENTIFIER.fullmatch(schema):
        raise CannotCheck(
            f"bad schema name {schema!r}: want a plain SQL identifier "
            "(a-z, 0-9 and _, not starting with a digit, at most 64 characters)"
        )
    return f"{schema}.counters"


def read_counters(conn: Any, *, schema: str = SCHEMA) -> dict[str, int]:
    """Every counter of the schema."""
    table = counters_table(schema)
    with conn.cursor() as cur:
        cur.execute(f"SELECT name, value FROM {table}")
        return {str(name): int(value) for name, value in cur.fetchall()}


def _admin_each(
    candidates: Iterable[Target], password: str, timeout: float, action: Callable[[Any], None], what: str
) -> Target:
    """Run `action` on the first candidate that works as kgt_admin; raise a one-line error otherwise."""
    failures: list[tuple[str, str, str]] = []
    for target in candidates:
        conn = None
        try:
            conn = sessions.connect(target, ADMIN_USER, password, timeout)
            action(conn)
            return target
        except Exception as exc:
            failures.append((target.name, classify(exc), one_line(exc)))
        finally:
            sessions.close(conn)
    detail = "; ".join(f"{name}: {cls}" for name, cls, _ in failures)
    classes = {cls for _, cls, _ in failures}
    if classes <= NETWORK_ERRORS | {"non-primary"}:
        raise NothingReachable(f"cannot {what}: no Primary node reachable ({detail})")
    raise CannotCheck(f"cannot {what} ({detail}; first error: {failures[0][2]})")


def _admin_candidates(topology: Topology, primary: list[Target]) -> list[Target]:
    """The Galera nodes, those of `primary`'s regions first: kgt_admin connects from the admin
    networks straight to a node, never through a proxy (`toolkit.accounts`)."""
    regions = [t.region for t in primary]
    nodes = sorted(
        topology.galera_nodes, key=lambda h: regions.index(h.region) if h.region in regions else len(regions)
    )
    return [sessions.node_target(topology, h) for h in nodes]


def setup(
    topology: Topology,
    work: list[Target],
    admin_password: str,
    verify_password: str,
    timeout: float,
    *,
    schema: str = SCHEMA,
) -> Target:
    """Create the schema, the rows and the least-privilege user (idempotent); return where it ran.

    The user is shared by every schema: each setup grants it on its own schema, in addition
    to what it already had.
    """
    table = counters_table(schema)
    rows = [t.region for t in work] + [SHARED]
    account = verify_account(topology, schema)

    def create(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {schema}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (name VARCHAR(64) NOT NULL PRIMARY KEY, "
                "value BIGINT NOT NULL DEFAULT 0, writer VARCHAR(64) NULL) ENGINE=InnoDB"
            )
            cur.executemany(f"INSERT IGNORE INTO {table} (name, value) VALUES (%s, 0)", [(r,) for r in rows])
            for source in account.sources:
                who = f"'{VERIFY_USER}'@'{source}'"
                quoted = who.replace("%", "%%")  # the statements with a parameter are %-formatted
                require = " REQUIRE SSL" if account.tls else ""
                cur.execute(f"CREATE USER IF NOT EXISTS {quoted} IDENTIFIED BY %s{require}", (verify_password,))
                cur.execute(f"ALTER USER {quoted} IDENTIFIED BY %s{require}", (verify_password,))
                cur.execute(f"GRANT {account.grant} TO {who}")

    return _admin_each(
        _admin_candidates(topology, work),
        admin_password,
        timeout,
        create,
        f"create schema {schema} and user {VERIFY_USER}",
    )


@dataclass(frozen=True)
class Cleaned:
    """What `cleanup` did: which schema, where, and which other schemas kept the shared user alive."""

    schema: str
    target: Target
    user_kept_for: tuple[str, ...]

    def summary(self) -> str:
        """One line for the operator."""
        user = (
            f"kept user {VERIFY_USER} (still granted on {', '.join(self.user_kept_for)})"
            if self.user_kept_for
            else f"dropped user {VERIFY_USER}"
        )
        return f"dropped schema {self.schema}, {user} (through {self.target.name})"


def cleanup(
    topology: Topology, work: list[Target], admin_password: str, timeout: float, *, schema: str = SCHEMA
) -> Cleaned:
    """Drop the schema and its grant; drop the shared user too once no other schema uses it.

    A drill (schema kgt_drill) or another verify run may be using kgt_verify right now:
    its grants on schemas that still exist keep the user alive.
    """
    counters_table(schema)
    kept: list[str] = []

    def drop(conn: Any) -> None:
        kept.clear()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {schema}")
            cur.execute("SELECT DISTINCT Db, Host FROM mysql.db WHERE User = %s", (VERIFY_USER,))
            grants = [(str(db), str(host)) for db, host in cur.fetchall()]
            cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (VERIFY_USER,))
            sources = [str(row[0]) for row in cur.fetchall()]
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            existing = {str(row[0]) for row in cur.fetchall()}
            kept.extend(sorted(({db for db, _ in grants} & existing) - {schema}))
            for source in sources:
                who = f"'{VERIFY_USER}'@'{source}'"
                if not kept:
                    cur.execute(f"DROP USER IF EXISTS {who}")
                elif (schema, source) in grants:
                    cur.execute(f"REVOKE ALL PRIVILEGES ON {schema}.* FROM {who}")

    target = _admin_each(
        _admin_candidates(topology, work), admin_password, timeout, drop, f"drop schema {schema} and user {VERIFY_USER}"
    )
    return Cleaned(schema, target, tuple(kept))
