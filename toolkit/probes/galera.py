"""`kgt probe galera`: one Galera node is Primary, Synced, ready and connected.

Reads `SHOW GLOBAL STATUS LIKE 'wsrep%'` as user kgt_health (USAGE is enough).

States
- CRITICAL: cluster status not Primary (names it: non-Primary, Disconnected); not ready;
  not connected; local state Joining/Joined/other; node unreachable or not answering
  within the time budget (a node that cannot be asked is down for its clients: this is
  the check_mysql convention); wsrep off; cluster size or flow control outside -c.
- WARNING: local state Donor/Desynced (a deliberate desync, e.g. a backup or SST
  donor); cluster size or flow control outside -w; by default with a topology, a
  cluster size below the topology's voters (Galera nodes + garbd).
- UNKNOWN: credentials rejected (or another server-side refusal), bad arguments, no
  result within -t.

`-w/-c` judge wsrep_cluster_size; `--fc-warning/--fc-critical` judge
wsrep_flow_control_paused (fraction of time paused since the last FLUSH STATUS).

Perfdata: cluster_size, local_state (1 Joining … 4 Synced), flow_control_paused (0..1),
recv_queue, send_queue, repl_latency (s, EVS average), cert_failures (c).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nagiosplugin

from toolkit.errors import ProbeUnknown, TargetUnreachable
from toolkit.probes import model
from toolkit.probes.model import Critical, Ok, Warn
from toolkit.probes.runtime import Deadline, ProbeArgs, execute
from toolkit.wsrep import DONOR_DESYNCED, JOINING, PRIMARY, STATE_NAMES, SYNCED, NodeState

NAME = "kgt galera"


def _pymysql_without_cryptography() -> None:
    """Import pymysql without `cryptography` (about 20 ms of the probe's start-up).

    pymysql needs cryptography only for MySQL 8's sha256/caching_sha2 RSA exchange over
    plain TCP; MariaDB's kgt_health uses mysql_native_password (or ed25519, which needs
    PyNaCl, not cryptography), so the probe does without it.
    """
    if "pymysql" in sys.modules or "cryptography" in sys.modules:
        return
    sys.modules["cryptography"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import pymysql  # noqa: F401
    finally:
        del sys.modules["cryptography"]


class Node(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """A Galera node reached over TCP; yields its wsrep status as metrics and findings."""

    def __init__(
        self, label: str, host: str, port: int, user: str, password: str, deadline: Deadline, ca: Path | None = None
    ) -> None:
        self.label, self.host, self.port = label, host, port
        self.user, self.password, self.deadline, self.ca = user, password, deadline, ca

    @property
    def name(self) -> str:
        """Resource name (nagiosplugin uses it only when the check has none)."""
        return self.label

    def status(self) -> dict[str, str]:
        """The wsrep status; TargetUnreachable (CRITICAL) or ProbeUnknown when it cannot be read.

        Client-side errors (MariaDB codes 2000+: cannot connect, connection lost) and
        socket errors mean the node is not serving; a server-side refusal (1045 access
        denied, 1130 host not allowed, …) means kgt cannot judge it: UNKNOWN.
        """
        _pymysql_without_cryptography()
        from toolkit import db

        endpoint = db.Endpoint(self.host, self.port, self.user, self.password, ca=self.ca)
        budget = self.deadline.budget()
        try:
            conn = db.connect(endpoint, connect_timeout=budget, read_timeout=budget, write_timeout=budget)
            try:
                return db.wsrep_status(conn)
            finally:
                conn.close()
        except Exception as exc:
            code = db.error_code(exc)
            if code == db.ER_ACCESS_DENIED:
                raise ProbeUnknown(f"{self.label}: credentials of {self.user} rejected (check the password)") from None
            if code is not None and code < 2000:
                raise ProbeUnknown(f"{self.label}: server refused the probe: {_first_line(exc)} ({code})") from None
            if exc.__class__.__module__.startswith("pymysql") or isinstance(exc, OSError):
                where = (
                    f"{self.host}:{self.port}" if self.label == self.host else f"{self.label} ({self.host}:{self.port})"
                )
                raise TargetUnreachable(f"{where} {db.classify(exc)}: {_first_line(exc)}") from None
            raise

    def probe(self) -> list[nagiosplugin.Metric]:
        """Metrics and findings of one node."""
        try:
            status = self.status()
        except TargetUnreachable as exc:
            return [model.finding("reachable", Critical, str(exc))]
        return metrics(self.label, status)


def _first_line(exc: BaseException) -> str:
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    text = str(args[1]) if len(args) > 1 else str(exc)
    return text.splitlines()[0] if text else exc.__class__.__name__


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else value


def metrics(label: str, status: dict[str, str]) -> list[nagiosplugin.Metric]:
    """Findings (Primary, local state, ready, connected) and perfdata of a wsrep status."""
    state = NodeState.from_rows(status)
    if state.cluster_status is None:
        return [model.finding("wsrep", Critical, f"{label}: wsrep is off (not a Galera node)")]
    state_no = state.local_state or 0
    # Without a comment, only the states a node moves through (1 to 4) have a name here.
    comment = state.local_state_comment or (
        STATE_NAMES[state_no] if JOINING <= state_no <= SYNCED else f"state {state_no}"
    )
    out = [
        nagiosplugin.Metric("primary", state.cluster_status, context="primary"),
        nagiosplugin.Metric("local_state", (state_no, comment), context="local_state"),
        model.finding(
            "ready", Ok if state.ready else Critical, "ready" if state.ready else f"{label} not ready (wsrep_ready=OFF)"
        ),
        model.finding(
            "connected",
            Ok if state.connected else Critical,
            "connected" if state.connected else f"{label} not connected (wsrep_connected=OFF)",
        ),
        nagiosplugin.Metric("cluster_size", state.cluster_size or 0, min=0, context="cluster_size"),
        nagiosplugin.Metric(
            "flow_control_paused", _or_zero(state.flow_control_paused), min=0, max=1, context="flow_control_paused"
        ),
        nagiosplugin.Metric("recv_queue", state.recv_queue or 0, min=0, context="perf"),
        nagiosplugin.Metric("send_queue", state.send_queue or 0, min=0, context="perf"),
        nagiosplugin.Metric("repl_latency", _or_zero(state.repl_latency), "s", min=0, context="perf"),
        nagiosplugin.Metric("cert_failures", state.cert_failures or 0, "c", min=0, context="perf"),
    ]
    return out


def _judge_primary(label: str) -> Any:
    def judge(value: str) -> model.Finding:
        if value == PRIMARY:
            return Ok, value
        return Critical, f"{label} is {value or 'in no component'} (wsrep_cluster_status), not Primary"

    return judge


def _judge_local_state(label: str) -> Any:
    def judge(value: tuple[int, str]) -> model.Finding:
        number, comment = value
        if number == SYNCED:
            return Ok, comment
        if number == DONOR_DESYNCED:
            return Warn, f"{label} is {comment} (wsrep_local_state={number})"
        return Critical, f"{label} is {comment} (wsrep_local_state={number}), not Synced"

    return judge


class _LocalState(model.Rule):
    """Judges the local state (number, comment) and reports the number as perfdata."""

    def performance(self, metric: nagiosplugin.Metric, resource: Any) -> nagiosplugin.Performance:
        """`local_state=4;;;0;4`."""
        return nagiosplugin.Performance(metric.name, metric.value[0], "", "", "", 0, 4)


def build(
    *,
    label: str,
    host: str,
    port: int,
    user: str,
    password: str,
    deadline: Deadline,
    warning: str | None,
    critical: str | None,
    fc_warning: str | None,
    fc_critical: str | None,
    ca: Path | None = None,
) -> nagiosplugin.Check:
    """The check of one node (over TLS, verified against `ca`, when one is given)."""

    def ok_text(results: nagiosplugin.Results) -> str:
        size = results["cluster_size"].metric.value
        comment = results["local_state"].metric.value[1]
        return f"{label} Primary, {comment}, ready, connected; cluster size {size}"

    return nagiosplugin.Check(
        Node(label, host, port, user, password, deadline, ca),
        model.Rule("primary", _judge_primary(label)),
        _LocalState("local_state", _judge_local_state(label)),
        model.Scalar("cluster_size", warning, critical, label=f"{label}: cluster size"),
        model.Scalar("flow_control_paused", fc_warning, fc_critical, label=f"{label}: flow control paused"),
        nagiosplugin.ScalarContext("perf"),
        model.Rule("finding"),
        model.Summary(ok_text),
        name=NAME,
    )


def main(
    args: ProbeArgs,
    *,
    host: str | None,
    port: int | None,
    node: str | None,
    fc_warning: str | None,
    fc_critical: str | None,
) -> int:
    """Run the probe; return the exit code."""

    def make(deadline: Deadline) -> nagiosplugin.Check:
        label, address, mariadb_port, warn = host or "", host, port, args.warning
        model_ = args.model()
        if model_ is not None:
            from toolkit.probes import targets

            if node:
                target = targets.host(model_, node, "galera")
                label, address = target.name, address or str(target.address)
                mariadb_port = mariadb_port or target.settings.galera.port
            if warn is None:
                warn = f"{len(model_.voters)}:"
        elif node:
            raise ProbeUnknown("--node needs a topology (the first argument)")
        if not address:
            raise ProbeUnknown("give -H HOST, or TOPOLOGY --node NAME")
        if args.password_file is None and model_ is None and args.secrets_path is None:
            raise ProbeUnknown("no password: give --password-file, or a topology/--secrets")
        return build(
            label=label or address,
            host=address,
            port=mariadb_port or 3306,
            user=args.user,
            password=args.password(model_, "health_password"),
            deadline=deadline,
            warning=warn,
            critical=args.critical,
            fc_warning=fc_warning,
            fc_critical=fc_critical,
            ca=args.ca_file(model_),
        )

    return execute(NAME, make, timeout=args.timeout, verbose=args.verbose)
