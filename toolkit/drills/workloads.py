"""The drill's workloads, all writing into one history: Galera verify, Keystone tokens, dirty reads.

- Galera: the verify loop of `kgt check verify` (toolkit.check.workload: one worker per
  region locking and incrementing through the region's first VIP, then reading back),
  with its setup (RTT, initial read) and final reads, reused as is, on a schema of its
  own (`kgt_drill`, so a verify run on the same site cannot look like a phantom write).
- Keystone: per region an issuer (process `ks-issue-R`) that issues a token through the
  region's endpoint (its first VIP at HAProxy's keystone_port), and a validator
  (process `ks-validate-R`) that validates the latest token of every issuer in turn
  through that endpoint, so every token is validated through every region and a dead
  endpoint's timeouts never slow another region down. Ops: f `issue` / `validate`,
  region = the endpoint's region, value `{"token": id}` / `{"token": id, "issuer": R}`
  where id is a hash prefix (a token is a bearer secret and never written down).
- Dirty reads: per region (process `dirty-R`) a read of the counters through the
  region's VIP at HAProxy's read port, where a non-Primary node still answers when
  wsrep_dirty_reads is on (f `dirty-read`).

Outcomes: ok; fail = certainly not done (refused, HTTP error, token rejected); info =
unknown (timed out or the connection dropped after the request was sent).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import accounts, db, tlsclient
from toolkit.check import counters, sessions
from toolkit.check import workload as verify
from toolkit.check.history import History
from toolkit.check.nodes import classify, one_line
from toolkit.errors import Sent
from toolkit.topology.model import Topology

if TYPE_CHECKING:
    from toolkit.secretstore import Secrets

CONNECT_TIMEOUT = 1.0
# The drill's own counters: a `kgt check verify` run on the same site at the same time
# would otherwise add increments the drill's history does not know (unexpected-write).
DRILL_SCHEMA = "kgt_drill"


@dataclass(frozen=True)
class ServiceEndpoint:
    """A region's service address: a VIP (or a host when the region has none) and a port."""

    region: str
    name: str
    address: str
    port: int
    ca: Path | None = None  # the site CA on a TLS site: HTTPS and MySQL over TLS, checked by address

    @property
    def where(self) -> str:
        """`address:port`."""
        return f"{self.address}:{self.port}"


def keystone_endpoints(topology: Topology) -> list[ServiceEndpoint]:
    """Each region's first VIP at HAProxy's keystone_port (regions without VIP or Keystone skipped)."""
    out = []
    for region in topology.regions:
        proxies = region.with_role("haproxy")
        if region.vips and proxies and (topology.with_role("keystone")):
            vip = region.vips[0]
            port = proxies[0].settings.haproxy.keystone_port
            out.append(ServiceEndpoint(region.name, vip.name, str(vip.address), port, topology.client_ca))
    return out


def read_endpoints(topology: Topology) -> list[ServiceEndpoint]:
    """Each region's first VIP at HAProxy's read port."""
    out = []
    for region in topology.regions:
        proxies = region.with_role("haproxy")
        if region.vips and proxies:
            vip = region.vips[0]
            port = proxies[0].settings.haproxy.read_port
            out.append(ServiceEndpoint(region.name, vip.name, str(vip.address), port, topology.client_ca))
    return out


# --- Keystone over HTTP(S) (no session, no retries: every attempt is one recorded op) ----------


def http_request(
    endpoint: ServiceEndpoint,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    timeout: float,
) -> tuple[int, dict[str, str], bytes]:
    """Send one JSON request to `endpoint`; return the status, lower-cased headers and body.

    Raises `Sent` when the connection fails after the request went out (the outcome is
    unknown); an error while connecting is raised as it is.
    """
    conn = tlsclient.http_connection(endpoint.address, endpoint.port, CONNECT_TIMEOUT, endpoint.ca)
    try:
        conn.connect()  # errors here (TLS handshake included): nothing was sent
        assert conn.sock is not None
        conn.sock.settimeout(timeout)
        data = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Sent(exc) from exc
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
    finally:
        conn.close()


def token_id(token: str) -> str:
    """A short, non-secret name for a token."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _error(exc: BaseException) -> tuple[str, str, str]:
    """(type, error class, message) of a failed HTTP attempt."""
    if isinstance(exc, Sent):
        cause = exc.__cause__ or exc
        timeout = isinstance(cause, (TimeoutError, socket.timeout))
        return "info", "timeout" if timeout else "connection-lost", one_line(cause)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "fail", "unreachable", f"connect timed out: {one_line(exc)}"
    return "fail", classify(exc) if not isinstance(exc, OSError) else "unreachable", one_line(exc)


class Tokens:
    """The latest token each issuer got, shared with the validators."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, str] = {}

    def put(self, issuer: str, token: str) -> None:
        """Remember the newest token of `issuer`."""
        with self._lock:
            self._latest[issuer] = token

    def get(self, issuer: str) -> str | None:
        """The newest token of `issuer`, if any."""
        with self._lock:
            return self._latest.get(issuer)

    def issuers(self) -> list[str]:
        """Issuers that have a token."""
        with self._lock:
            return sorted(self._latest)


@dataclass(frozen=True)
class Credentials:
    """Who the Keystone workload authenticates as."""

    user: str
    password: str
    project: str = "admin"
    domain: str = "default"

    def body(self) -> dict[str, Any]:
        """The POST /v3/auth/tokens body for a project-scoped password token."""
        return {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": self.user, "domain": {"id": self.domain}, "password": self.password}},
                },
                "scope": {"project": {"name": self.project, "domain": {"id": self.domain}}},
            }
        }


class _Loop(threading.Thread):
    """A process that repeats one operation until told to stop."""

    def __init__(self, name: str, stop: threading.Event, interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event, self.interval = stop, interval
        self.backoff = 0.0

    def once(self) -> bool:
        """One operation; whether it succeeded."""
        raise NotImplementedError

    def run(self) -> None:
        """Repeat `once` with a jittered pause, backing off while it fails."""
        while not self.stop_event.is_set():
            ok = self.once()
            self.backoff = 0.0 if ok else min(0.5, self.backoff * 2 or 0.05)
            self.stop_event.wait(max(self.interval * random.uniform(0.5, 1.5), self.backoff))


class _KeystoneLoop(_Loop):
    """A loop against one region's Keystone endpoint, sharing the latest token of every region."""

    f: str  # the operation: issue, validate

    def __init__(
        self,
        endpoint: ServiceEndpoint,
        tokens: Tokens,
        history: History,
        stop: threading.Event,
        timeout: float,
        interval: float,
        credentials: Credentials | None = None,
    ) -> None:
        super().__init__(f"ks-{self.f}-{endpoint.region}", stop, interval)
        self.endpoint, self.tokens, self.history, self.timeout = endpoint, tokens, history, timeout
        self.credentials = credentials


class Issuer(_KeystoneLoop):
    """Issues tokens through one region's endpoint (`credentials`: whose)."""

    f = "issue"

    def once(self) -> bool:
        """One issue."""
        e = self.endpoint
        op = self.history.invoke(self.name, "issue", region=e.region, host=e.name, address=e.where)
        try:
            assert self.credentials is not None, "an issuer logs in"
            status, headers, payload = http_request(
                e, "POST", "/v3/auth/tokens?nocatalog", self.credentials.body(), {}, self.timeout
            )
        except Exception as exc:
            type_, error, message = _error(exc)
            self.history.complete(op, type_, error=error, message=message)
            return False
        token = headers.get("x-subject-token")
        if status == 201 and token:
            self.tokens.put(e.region, token)
            self.history.complete(op, "ok", {"token": token_id(token)})
            return True
        self.history.complete(op, "fail", error=f"http-{status}", message=_snippet(payload))
        return False


class Validator(_KeystoneLoop):
    """Validates the latest token of every issuer, in turn, through one region's endpoint."""

    f = "validate"
    turn = 0  # whose token is next

    def once(self) -> bool:
        """One validation (waits quietly while no token exists yet)."""
        issuers = self.tokens.issuers()
        if not issuers:
            return True
        issuer = issuers[self.turn % len(issuers)]
        self.turn += 1
        token = self.tokens.get(issuer)
        assert token is not None
        e = self.endpoint
        op = self.history.invoke(
            self.name,
            "validate",
            region=e.region,
            host=e.name,
            address=e.where,
            value={"token": token_id(token), "issuer": issuer},
        )
        try:
            status, _, payload = http_request(
                e,
                "GET",
                "/v3/auth/tokens?nocatalog",
                None,
                {"X-Auth-Token": token, "X-Subject-Token": token},
                self.timeout,
            )
        except Exception as exc:
            type_, error, message = _error(exc)
            self.history.complete(op, type_, error=error, message=message)
            return False
        if status == 200:
            self.history.complete(op, "ok", {"token": token_id(token), "issuer": issuer})
            return True
        # 401/404: the endpoint says the token is not valid — a Fernet key or database problem.
        error = "rejected" if status in (401, 404) else f"http-{status}"
        self.history.complete(op, "fail", error=error, message=_snippet(payload))
        return False


def _snippet(payload: bytes) -> str:
    return " ".join(payload.decode(errors="replace").split())[:200]


class DirtyReader(_Loop):
    """Reads the verify counters (of `schema`) through a region's read port (dirty reads allowed)."""

    def __init__(
        self,
        endpoint: ServiceEndpoint,
        password: str,
        history: History,
        stop: threading.Event,
        timeout: float,
        interval: float,
        schema: str = DRILL_SCHEMA,
    ) -> None:
        super().__init__(f"dirty-{endpoint.region}", stop, interval)
        self.endpoint, self.password, self.history, self.timeout = endpoint, password, history, timeout
        self.schema = schema
        self.conn: Any = None

    def once(self) -> bool:
        """One read; the connection is replaced after any error."""
        e = self.endpoint
        op = self.history.invoke(self.name, "dirty-read", region=e.region, host=e.name, address=e.where)
        try:
            if self.conn is None:
                self.conn = db.connect(
                    db.Endpoint(e.address, e.port, accounts.VERIFY_USER, self.password, ca=e.ca),
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=self.timeout,
                    write_timeout=self.timeout,
                    dirty_reads=True,
                )
            values = counters.read_counters(self.conn, schema=self.schema)
        except Exception as exc:
            self.history.complete(op, "fail", error=classify(exc), message=one_line(exc))
            self._close()
            return False
        self.history.complete(op, "ok", values)
        return True

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    def run(self) -> None:
        """Read until stopped; close the connection at the end."""
        try:
            super().run()
        finally:
            self._close()


# --- all of them together --------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadSettings:
    """How hard the workloads push."""

    # Deadlines of every call once connected. A connection that a moved VIP left behind hangs
    # (packets go to the old proxy until the client's ARP entry changes): a client that waits
    # longer than this only measures its own patience, not the endpoint, which is already back.
    timeout: float = 2.0  # Galera: connect, query, commit (a commit waiting out a view change is `info`)
    keystone_timeout: float = 2.0
    verify_interval: float = 0.05
    issue_interval: float = 0.1
    validate_interval: float = 0.05
    read_interval: float = 0.2
    settle: float = 15.0  # final reads wait this long for every node to be Synced


class Workloads:
    """Every workload thread of a drill, started and stopped together."""

    def __init__(self, topology: Topology, secrets: Secrets, history: History, settings: WorkloadSettings) -> None:
        self.topology, self.history, self.settings = topology, history, settings
        self.verify_password = secrets["verify_password"]
        self.admin_password = secrets["admin_password"]
        self.keystone_password = secrets["keystone_admin_password"] if topology.with_role("keystone") else None
        through = "vip" if all(r.vips for r in topology.regions) else "nodes"
        self.targets = sessions.targets(topology, through)
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.threads: list[threading.Thread] = []
        self.options = verify.Options(
            duration=None,
            timeout=settings.timeout,
            interval=settings.verify_interval,
            settle=settings.settle,
            schema=DRILL_SCHEMA,
        )

    def prepare(self) -> None:
        """Create the verify schema and user (as `kgt check verify` does)."""
        counters.setup(
            self.topology,
            self.targets,
            self.admin_password,
            self.verify_password,
            self.settings.timeout,
            schema=self.options.schema,
        )

    def start(self) -> None:
        """Setup measurements, then every worker."""
        t = self.topology
        verify.measure_rtt(self.history, [h for r in t.regions for h in r.galera_nodes[:1]], 3)
        verify.initial_read(
            self.history, self.targets, self.verify_password, self.settings.timeout, schema=self.options.schema
        )
        acked = verify.Acked()
        s = self.settings
        self.threads = [
            verify.Worker(target, self.verify_password, self.history, acked, self.options, self.stop)
            for target in self.targets
        ]
        if self.keystone_password is not None:
            tokens = Tokens()
            credentials = Credentials("admin", self.keystone_password)
            for e in keystone_endpoints(t):
                self.threads.append(
                    Issuer(e, tokens, self.history, self.stop, s.keystone_timeout, s.issue_interval, credentials)
                )
                self.threads.append(
                    Validator(e, tokens, self.history, self.stop, s.keystone_timeout, s.validate_interval)
                )
        for e in read_endpoints(t):
            self.threads.append(
                DirtyReader(
                    e, self.verify_password, self.history, self.stop, s.timeout, s.read_interval, self.options.schema
                )
            )
        for thread in self.threads:
            thread.start()

    def finish(self, settle: bool = True) -> None:
        """Stop every worker (each finishes its current operation), then read the final state."""
        self.stop.set()
        deadline = time.monotonic() + self.settings.timeout * 3 + 5
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        # replace(), not a fresh Options: the final reads must read the drill's own schema.
        options = self.options if settle else replace(self.options, settle=3.0)
        verify.final_reads(self.history, self.topology, self.verify_password, options, self.abort)
