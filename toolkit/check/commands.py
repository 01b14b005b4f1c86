"""`kgt check quorum` and `kgt check verify`: the CLI edge of the checks.

Both print a table (or JSON with a documented schema) and exit with the check's state;
a check that cannot run at all (a usage error included) prints on stderr and exits 3
(UNKNOWN) — or 2 (CRITICAL) when nothing at all could be reached.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

import click

from toolkit.cli_options import FamilyGroup, duration_option, output_format
from toolkit.cli_options import secrets as secrets_option
from toolkit.cli_options import topology as topology_argument
from toolkit.errors import CannotCheck, KgtError, TopologyError

if TYPE_CHECKING:
    from toolkit.check.checker import VerifyReport
    from toolkit.check.history import Op
    from toolkit.check.sessions import Target
    from toolkit.check.workload import Options
    from toolkit.secretstore import Secrets
    from toolkit.topology.model import Topology


def _context(topology_path: Path, secrets_path: Path | None) -> tuple[Topology, Secrets]:
    """Topology and secrets; any problem with them is UNKNOWN in one line."""
    from toolkit import secretstore
    from toolkit.topology import load

    try:
        model = load(topology_path)
        return model, secretstore.for_topology(model, secrets_path)
    except TopologyError as exc:
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        raise CannotCheck(f"{exc.problems[0]}{more}") from None
    except KgtError as exc:
        raise CannotCheck(str(exc)) from None


# Click's own code for a usage error is 2, which here would read as CRITICAL (quorum)
# or inconclusive (verify) to a script or a monitoring system: a check that cannot run is 3.
@click.group(cls=FamilyGroup, usage_exit=3)
def check() -> None:
    """Check a running cluster: quorum from every node, or a verify workload through every region."""


@check.command()
@topology_argument()
@secrets_option
@output_format()
@duration_option(
    "--timeout", default="5s", help="deadline of the whole check; each node gets a 2 s connect timeout within it"
)
def quorum(topology: Path, secrets_path: Path | None, fmt: str, timeout: float) -> None:
    """Ask every Galera node (in parallel, as kgt_health) and compare with the topology.

    Exit 0 OK, 1 WARNING (a node or region out, flow control), 2 CRITICAL (no Primary,
    split brain, Primary without a weight majority, nothing reachable), 3 UNKNOWN (e.g.
    bad credentials everywhere). JSON schema: see toolkit/check/quorum.py.
    """
    from toolkit.check import nodes, report
    from toolkit.check import quorum as judge

    model, secrets = _context(topology, secrets_path)
    password = secrets["health_password"]
    results = nodes.probe_all(model.galera_nodes, nodes.HEALTH_USER, password, timeout, model.client_ca)
    verdict = judge.evaluate(model, results)
    click.echo(json.dumps(verdict.to_json(), indent=2) if fmt == "json" else report.quorum_text(verdict))
    click.get_current_context().exit(int(verdict.state))


class _Interrupts:
    """First Ctrl-C: stop the workload and summarise; second: skip the final reads too."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.abort = threading.Event()

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.abort.set()
            click.echo("kgt: interrupted again: skipping the final reads", err=True)
        else:
            self.stop.set()
            click.echo("kgt: interrupted: stopping, then summarising what was seen", err=True)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


@check.command("history")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@output_format()
def check_history(path: Path, fmt: str) -> None:
    """Re-run the verify checker on a saved history file (no cluster needed); same output and exit codes."""
    from toolkit.check import checker, history, report

    try:
        ops = history.read(path)
    except KgtError as exc:
        raise CannotCheck(str(exc)) from None
    result = checker.check(ops)
    click.echo(json.dumps(result.to_json(), indent=2) if fmt == "json" else report.verify_text(result))
    click.get_current_context().exit(int(result.state))


@check.command()
@topology_argument()
@secrets_option
@output_format()
@duration_option("--duration", default=None, help="how long to run, e.g. 60s, 5m (default 60s)")
@click.option("--iterations", type=click.IntRange(min=0), default=None, help="iterations per region instead")
@click.option(
    "--through",
    type=click.Choice(["vip", "nodes"]),
    default=None,
    help="each region's first VIP (HAProxy write port) or first Galera node (default: vip when every region has one)",
)
@click.option(
    "--sync-wait",
    type=click.Choice(["0", "1"]),
    default="0",
    show_default=True,
    help="wsrep_sync_wait of the reads (1: causal reads, which fail on a non-Primary node)",
)
@click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the history here (JSON lines; schema in toolkit/check/history.py)",
)
@duration_option("--timeout", default="5s", help="deadline of every call (connect, query, commit)")
@duration_option("--interval", default="50ms", help="pause between a region's iterations (0: as fast as it goes)")
@duration_option(
    "--settle",
    default="10s",
    help="how long the end waits for every node to be Synced before reading the final state",
)
@click.option(
    "--schema",
    default="kgt_verify",
    show_default=True,
    help="database holding the counters (a plain SQL identifier); give concurrent runs "
    "different ones (drills use kgt_drill)",
)
@click.option(
    "--mode",
    type=click.Choice(["concurrent", "lockstep"]),
    default="concurrent",
    show_default=True,
    help="concurrent: one worker per region; lockstep: the seed's loop, each region's lock in turn, "
    "its locking read causal (wsrep_sync_wait=1) so kgt's writes never race and no region "
    "starves over a slow WAN",
)
@click.option(
    "--cleanup",
    is_flag=True,
    help="drop the schema (--schema) at the end, and user kgt_verify "
    "unless another schema still uses it (--iterations 0: only that)",
)
def verify(
    topology: Path,
    secrets_path: Path | None,
    fmt: str,
    duration: float | None,
    iterations: int | None,
    through: str | None,
    sync_wait: str,
    history_path: Path | None,
    timeout: float,
    interval: float,
    settle: float,
    schema: str,
    mode: str,
    cleanup: bool,
) -> None:
    """Lock and increment through every region, read back from every region, and check the history.

    Exit 0: valid (no lost writes, nothing invalid); 1: anomalies (lost writes or
    updates, divergent final state, writes acknowledged while non-Primary, unexpected
    writes); 2: inconclusive (nothing acknowledged, or the final state unreadable) or no
    Primary node reachable for setup; 3: could not run (credentials, secrets, topology,
    usage).
    Ctrl-C stops the run and prints what was seen so far. JSON schema: see
    toolkit/check/checker.py; history schema: toolkit/check/history.py.

    A run must be the only writer of its --schema (another writer shows up as
    unexpected-write): give runs on the same cluster at the same time different schemas.
    User kgt_verify is shared and granted on each schema it is used with; --cleanup drops
    the schema and that grant, and the user only when no other existing schema is granted
    to it (a drill running beside keeps its user).
    """
    from toolkit.check import checker, counters, sessions, workload

    if duration is not None and iterations is not None:
        raise click.UsageError("give --duration or --iterations, not both")
    options = workload.Options(
        duration=None if iterations is not None else (duration or 60.0),
        iterations=iterations,
        timeout=timeout,
        interval=interval,
        sync_wait=int(sync_wait),
        settle=settle,
        schema=schema,
        mode=mode,
    )
    model, secrets = _context(topology, secrets_path)
    if through is None:
        through = "vip" if all(r.vips for r in model.regions) else "nodes"
    work = sessions.targets(model, through)
    admin, verify_password = secrets["admin_password"], secrets["verify_password"]
    if cleanup and iterations == 0:
        click.echo(counters.cleanup(model, work, admin, timeout, schema=options.schema).summary())
        return
    counters.setup(model, work, admin, verify_password, timeout, schema=options.schema)
    result = checker.check(_run(model, work, verify_password, options, history_path))
    cleaned = None
    if cleanup:  # a failed cleanup is reported; it never hides the verdict
        try:
            cleaned = counters.cleanup(model, work, admin, timeout, schema=options.schema).summary()
        except KgtError as exc:
            cleaned = f"cleanup failed: {exc}"
    facts = {"through": through, "mode": mode, "history": str(history_path) if history_path else None}
    _print_verify(result, fmt, facts, cleaned, f"verify {model.name} through {through}, {len(work)} regions, {mode}")
    click.get_current_context().exit(int(result.state))


def _run(model: Topology, work: list[Target], password: str, options: Options, history_path: Path | None) -> list[Op]:
    """Run the workload (Ctrl-C stops it), writing the history to `history_path` if given; its operations."""
    from toolkit.check import history, workload

    interrupts = _Interrupts()
    sink: IO[str] | None = None
    try:
        if history_path is not None:
            try:
                sink = history_path.open("w", encoding="utf-8")
            except OSError as exc:
                raise CannotCheck(f"{history_path}: {exc.strerror or exc}") from None
        recorder = history.History(sink)
        with interrupts.installed():
            workload.run(model, work, password, recorder, options, interrupts.stop, interrupts.abort)
    finally:
        if sink is not None:
            sink.close()
    return recorder.ops


def _print_verify(
    result: VerifyReport, fmt: str, facts: dict[str, str | None], cleaned: str | None, heading: str
) -> None:
    """The verdict as JSON (the checker's, plus how it ran) or as the heading and the report."""
    from toolkit.check import report

    if fmt == "json":
        click.echo(json.dumps({**result.to_json(), **facts, "cleanup": cleaned}, indent=2))
        return
    history_path = facts["history"]
    click.echo(heading + (f", history {history_path}" if history_path else ""))
    click.echo(report.verify_text(result))
    if cleaned:
        click.echo(cleaned)
