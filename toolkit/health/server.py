"""The HTTP side of `kgt health serve`: a threaded stdlib server that answers every check in time.

HAProxy checks each node every second from several proxies. So that a hung MariaDB never
holds a check past its timeout, and never piles up connections, the database is asked by at
most one probe at a time (concurrent checks share it) and every request waits for that probe
only until its deadline, then answers 503.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from toolkit.health.status import (
    CHECK_PATHS,
    STATUS,
    Probe,
    Unreachable,
    Verdict,
    describe,
    status_document,
    verdict,
)

log = logging.getLogger(__name__)

DEFAULT_DEADLINE = 1.5


class Prober:
    """Single-flight probing with a deadline: one fetch in flight, shared by all callers."""

    def __init__(self, fetch: Callable[[], Probe], deadline: float = DEFAULT_DEADLINE) -> None:
        self._fetch = fetch
        self.deadline = deadline
        self._lock = threading.Lock()
        self._inflight: Future[Probe] | None = None

    def probe(self) -> Probe:
        """The latest probe, or `Unreachable` if it did not finish within the deadline."""
        with self._lock:
            future = self._inflight
            if future is None or future.done():
                future = Future()
                self._inflight = future
                # A daemon thread: a fetch stuck beyond its socket timeouts must not block exit.
                threading.Thread(target=self._run, args=(future,), name="kgt-health-probe", daemon=True).start()
        try:
            return future.result(timeout=self.deadline)
        except TimeoutError:
            return Unreachable(f"no answer within {self.deadline:g}s")

    def _run(self, future: Future[Probe]) -> None:
        try:
            result = self._fetch()
        except Exception as exc:  # a failed fetch is an answer, not a crash
            result = Unreachable(describe(exc))
        future.set_result(result)


class Response(NamedTuple):
    """What the handler sends: status code, body, content type."""

    code: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class HealthServer(ThreadingHTTPServer):
    """Answers `/`, `/write`, `/read` and `/status` from a `Prober` and the maintenance file."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        prober: Prober,
        maintenance_file: Path | None = None,
        *,
        donor_reads: bool = True,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, HealthHandler)
        self.prober = prober
        self.maintenance_file = maintenance_file
        self.donor_reads = donor_reads
        self._last: dict[str, Verdict] = {}
        self._last_lock = threading.Lock()

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup: DNS may be down exactly when checks matter."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    @property
    def port(self) -> int:
        """The port actually bound (differs from the one asked for when that was 0)."""
        return int(self.server_address[1])

    def maintenance(self) -> Path | None:
        """The maintenance file if it exists now (checked on every request: toggled at runtime)."""
        if self.maintenance_file is not None and self.maintenance_file.exists():
            return self.maintenance_file
        return None

    def respond(self, path: str) -> Response:
        """The whole answer to `GET path`; the handler only writes it out."""
        maintenance = self.maintenance()
        if path == STATUS:
            code, document = status_document(self.prober.probe(), maintenance, donor_reads=self.donor_reads)
            return Response(code, json.dumps(document, indent=2) + "\n", "application/json")
        if path not in CHECK_PATHS:
            return Response(404, f"404 no such check {path} (use /write, /read or /status)\n")
        probe = None if maintenance else self.prober.probe()
        answer = verdict(probe, path, maintenance, donor_reads=self.donor_reads)
        self._note(CHECK_PATHS[path], answer)
        return Response(answer.code, answer.line + "\n")

    def _note(self, path: str, answer: Verdict) -> None:
        """Log a line when the answer for a path changes into, within or out of failure."""
        with self._last_lock:
            before = self._last.get(path)
            self._last[path] = answer
        if answer == before or (answer.code == 200 and (before is None or before.code == 200)):
            return
        if answer.code == 200 and before is not None:
            log.warning("%s %s (was: %s)", path, answer.line, before.line)
        else:
            log.warning("%s %s", path, answer.line)


class HealthHandler(BaseHTTPRequestHandler):
    """One check: one request, one short answer, connection closed."""

    server: HealthServer
    protocol_version = "HTTP/1.0"
    # A client that connects and sends nothing gives up its thread after this many seconds.
    timeout = 2.0

    def do_GET(self) -> None:
        """Answer a check (HAProxy's `option httpchk GET /write`)."""
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        """Answer a check without the body."""
        self._answer(send_body=False)

    # A bare `option httpchk` sends `OPTIONS /`.
    do_OPTIONS = do_GET

    def _answer(self, send_body: bool) -> None:
        try:
            response = self.server.respond(urlsplit(self.path).path)
        except Exception as exc:  # a check that fails is a node that is down
            log.exception("answering %s failed", self.path)
            response = Response(503, f"503 health check failed: {describe(exc)}\n")
        body = response.body.encode("utf-8")
        self.send_response(response.code)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def version_string(self) -> str:
        """The `Server` header: no Python version for whoever scans port 9200."""
        return "kgt-health"

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log: HAProxy's checks would flood it."""
