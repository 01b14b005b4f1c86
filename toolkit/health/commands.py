"""`kgt health`: serve the endpoint HAProxy checks on each Galera node, or ask it once.

`kgt health serve --defaults-file /etc/kgt/health.cnf` is the whole command line of the
systemd unit; the defaults file (`[client] user=… password=… socket=…`) keeps the password out
of argv and logs.
"""

from __future__ import annotations

import configparser
import http.client
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from toolkit.cli_options import FamilyGroup
from toolkit.health.server import DEFAULT_DEADLINE, HealthServer, Prober
from toolkit.health.status import DbSettings, probe

DEFAULT_DEFAULTS_FILE = Path("/etc/kgt/health.cnf")
DEFAULT_MAINTENANCE_FILE = Path("/etc/kgt/maintenance")

log = logging.getLogger("toolkit.health")


def _log_to_stderr() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("kgt-health: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


@click.group(name="health", cls=FamilyGroup, usage_exit=2)
def health() -> None:
    """Galera-aware health endpoint for HAProxy (GET /write, /read, /status)."""


@health.command()
@click.option("--bind", default="0.0.0.0", show_default=True, help="Address to listen on (IPv6 too).")
@click.option("--port", default=9200, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option(
    "--defaults-file",
    default=DEFAULT_DEFAULTS_FILE,
    show_default=True,
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="my.cnf-style file with [client] user, password and socket (or host/port).",
)
@click.option(
    "--maintenance-file",
    default=DEFAULT_MAINTENANCE_FILE,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="While this file exists every path answers 503.",
)
@click.option(
    "--timeout",
    default=DEFAULT_DEADLINE,
    show_default=True,
    type=click.FloatRange(0.1, 10.0),
    help="Seconds a check waits for MariaDB before answering 503; keep below HAProxy's `timeout check`.",
)
@click.option(
    "--donor-reads/--no-donor-reads",
    default=True,
    show_default=True,
    help="Whether /read accepts a Primary node that is Donor/Desynced.",
)
def serve(bind: str, port: int, defaults_file: Path, maintenance_file: Path, timeout: float, donor_reads: bool) -> None:
    """Answer HAProxy's checks until SIGTERM or SIGINT."""
    _log_to_stderr()
    try:
        settings = DbSettings.from_defaults_file(defaults_file)
    except (OSError, configparser.Error) as exc:
        raise click.BadParameter(f"cannot read {defaults_file}: {exc}", param_hint="--defaults-file") from exc
    if defaults_file.stat().st_mode & 0o004:
        log.warning("%s is world-readable and holds a password; chmod 600 it", defaults_file)
    prober = Prober(lambda: probe(settings), deadline=timeout)
    try:
        server = HealthServer((bind, port), prober, maintenance_file, donor_reads=donor_reads)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {bind}:{port}: {exc}") from exc

    stopped_by: list[str] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        # No logging here (its lock may be held by the interrupted code); shutdown() waits
        # for serve_forever(), which runs in this very thread, hence the helper thread.
        stopped_by.append(signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("listening on %s:%d (maintenance file %s)", bind, server.port, maintenance_file)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    log.info("stopped on %s", stopped_by[0] if stopped_by else "request")


@health.command()
@click.option("--path", default="/write", show_default=True, help="/write, /read, /status or /.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9200, show_default=True, type=click.IntRange(1, 65535))
@click.option("--timeout", default=3.0, show_default=True, type=click.FloatRange(0.1, 60.0))
def check(path: str, host: str, port: int, timeout: float) -> None:
    """GET the endpoint once and print its answer; exit 0 on 200, 2 otherwise."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        click.echo(f"health endpoint {host}:{port} unreachable: {exc}")
        sys.exit(2)
    finally:
        connection.close()
    click.echo(body or f"{response.status} {response.reason}")
    sys.exit(0 if response.status == 200 else 2)
