"""`kgt drill NAME`: run one failure drill (or `all`) and say pass / fail / unknown in one line.

Exit codes like Jepsen's verdicts: 0 pass (every expectation held), 1 fail, 2 unknown
(interrupted, refused to start because the site was not healthy, something could not be
decided, or a usage error: click's code 2 means "no verdict" here too). The report goes
to --report DIR (default LAB_DIR/drills/TIME-NAME): report.json (schema in
toolkit/drills/report.py), report.html and history.jsonl.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from toolkit.cli_options import FamilyGroup, output_format
from toolkit.cli_options import duration as duration_option
from toolkit.cli_options import topology as topology_argument
from toolkit.drills.faults.base import FaultKind, OptionDecorator, Target
from toolkit.errors import DrillRefused, UsageError

if TYPE_CHECKING:
    from toolkit.drills.backend import LabBackend
    from toolkit.drills.runner import Timing
    from toolkit.secretstore import Secrets
    from toolkit.topology.model import Topology


def _duration(flag: str, default: str, help_text: str) -> OptionDecorator:
    """A duration option with a default (`40s`, `500ms`, `2m`)."""
    return click.option(flag, default=default, callback=duration_option, show_default=True, help=help_text)


def _options() -> tuple[OptionDecorator, ...]:
    """The arguments and options every drill takes, in the order `--help` lists them."""
    return (
        topology_argument(required=False),
        click.option(
            "--lab-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path(".kgt-lab"),
            show_default=True,
            help="the lab to drill",
        ),
        click.option(
            "--secrets",
            "secrets_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="secrets file (default: the lab's)",
        ),
        _duration("--duration", "40s", "the workloads run at least this long"),
        _duration("--fault-at", "8s", "inject the fault this long after the workloads start"),
        click.option(
            "--heal-after",
            default=None,
            callback=duration_option,
            help="heal this long after injecting [default: 14s, longer where the analysis predicts a "
            "read-only region: Galera's and HAProxy's detection bounds, the slack and 5 s to watch "
            "it serve]",
        ),
        _duration("--ready-timeout", "15s", "wait this long for a healthy site before refusing to start"),
        _duration("--healthy-timeout", "90s", "after the heal the site must be healthy again within this"),
        click.option(
            "--report",
            "report_dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="where to write report.json, report.html, history.jsonl",
        ),
        output_format(aliases={"text": "table"}),
    )


def _decorate(func: Callable[..., Any], options: tuple[OptionDecorator, ...]) -> Callable[..., Any]:
    """Apply click decorators so that `--help` lists them in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def _context(
    topology_path: Path | None, lab_dir: Path, secrets_path: Path | None
) -> tuple[Topology, Secrets, LabBackend]:
    from toolkit import secretstore
    from toolkit.drills.backend import LabBackend
    from toolkit.lab import docker
    from toolkit.lab.state import LabState
    from toolkit.topology import load

    info = LabState(lab_dir).require()
    topology = load(topology_path or info["topology"])
    if topology_path is not None and Path(info["topology"]).resolve() != topology_path.resolve():
        lab_topology = load(info["topology"])
        if lab_topology.name != topology.name:
            raise UsageError(f"{topology_path} is not the topology of the lab in {lab_dir} ({info['topology']})")
    docker.require_engine()
    secrets = secretstore.for_topology(
        topology, secrets_path or (Path(info["secrets"]) if info.get("secrets") else None)
    )
    return topology, secrets, LabBackend(topology)


def _timing(
    duration: float,
    fault_at: float,
    heal_after: float | None,
    ready_timeout: float,
    healthy_timeout: float,
    default_heal_after: float,
) -> Timing:
    from toolkit.drills.runner import Timing

    heal_after = default_heal_after if heal_after is None else heal_after
    if fault_at <= 0 or heal_after <= 0:
        raise UsageError("--fault-at and --heal-after must be positive")
    return Timing(
        duration=duration,
        fault_at=fault_at,
        heal_after=heal_after,
        ready_timeout=ready_timeout,
        healthy_timeout=healthy_timeout,
    )


def _report_dir(report_dir: Path | None, lab_dir: Path, name: str) -> Path:
    if report_dir is not None:
        return report_dir
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return lab_dir / "drills" / f"{stamp}-{name}"


def _run(kind: str, opts: dict[str, Any], target: Target) -> None:
    from toolkit.drills import faults, report, runner

    topology, secrets, backend = _context(opts["topology"], opts["lab_dir"], opts["secrets_path"])
    fault = faults.resolve_target(topology, kind, target)
    timing = _timing(
        opts["duration"],
        opts["fault_at"],
        opts["heal_after"],
        opts["ready_timeout"],
        opts["healthy_timeout"],
        faults.heal_after(topology, fault, backend.wan_rtt()),
    )
    directory = _report_dir(opts["report_dir"], opts["lab_dir"], kind)
    echo = functools.partial(click.echo, err=opts["fmt"] == "json")
    echo(f"drill {fault.describe()} on {topology.name}; report in {directory}")
    result = runner.run(topology, secrets, backend, fault, timing, directory, echo)
    if opts["fmt"] == "json":
        click.echo(json.dumps(report.to_json(result), indent=2))
    else:
        click.echo(report.text(result))
    click.get_current_context().exit(result.code)


@click.group(cls=FamilyGroup, usage_exit=2)
def drill() -> None:
    """Inject one fault into a running site while workloads run, heal it, and judge the history.

    TOPOLOGY, the optional first argument, is the topology file (default: the one the lab
    was booted from). Exit 0 pass, 1 fail, 2 unknown. Ctrl-C heals the fault before exiting.
    """


def fault_command(cls: type[FaultKind]) -> click.Command:
    """`kgt drill NAME` for one fault kind: its own options first, then every drill's."""
    own: list[str] = []

    def callback(**opts: Any) -> None:
        target = cls.target(**{name: opts.pop(name) for name in own})
        _run(cls.name, opts, target)

    command = click.command(cls.name, help=cls.help)(_decorate(callback, (*cls.options, *_options())))
    own.extend(str(p.name) for p in command.params[: len(cls.options)])
    return command


def _add_fault_commands() -> None:
    from toolkit.drills.faults import REGISTRY

    for cls in REGISTRY.values():
        drill.add_command(fault_command(cls))


_add_fault_commands()


@drill.command("all")
@click.option("--keep-lab", is_flag=True, help="leave a lab this command booted running")
@functools.partial(_decorate, options=_options())
def all_drills(keep_lab: bool, **opts: Any) -> None:
    """The standard set in sequence, on the given healthy lab, or on a fresh one booted from TOPOLOGY."""
    from toolkit.lab import commands as lab_commands
    from toolkit.lab.state import LabState

    ctx = click.get_current_context()
    lab_dir: Path = opts["lab_dir"]
    booted = False
    if not LabState(lab_dir).info() or not _lab_running(lab_dir):
        if opts["topology"] is None:
            raise UsageError(f"no lab runs from {lab_dir}: give a TOPOLOGY to boot a fresh one")
        click.echo(f"booting a fresh lab from {opts['topology']} in {lab_dir}")
        ctx.invoke(lab_commands.up, topology=opts["topology"], secrets_path=opts["secrets_path"], lab_dir=lab_dir)
        booted = True
    base = _report_dir(opts["report_dir"], lab_dir, "all")
    try:
        summary, planned = _run_standard_set(opts, base)
    finally:
        if booted and not keep_lab:
            ctx.invoke(lab_commands.down, lab_dir=lab_dir, keep_data=False)
    ctx.exit(_summarize_all(summary, planned, base))


def _run_standard_set(opts: dict[str, Any], base: Path) -> tuple[list[dict[str, Any]], int]:
    """Every standard fault in turn (an interrupt ends the set); the summary of each, and how many were planned."""
    from toolkit.drills import faults, report, runner

    topology, secrets, backend = _context(opts["topology"], opts["lab_dir"], opts["secrets_path"])
    rtt = backend.wan_rtt()
    kinds = faults.standard_set()
    summary: list[dict[str, Any]] = []
    for kind in kinds:
        fault = faults.resolve(topology, kind)
        timing = _timing(
            opts["duration"],
            opts["fault_at"],
            opts["heal_after"],
            max(opts["ready_timeout"], 60.0),
            opts["healthy_timeout"],
            faults.heal_after(topology, fault, rtt),
        )
        click.echo(f"== drill {fault.describe()}")
        try:
            result = runner.run(topology, secrets, backend, fault, timing, base / kind, click.echo)
        except DrillRefused as exc:
            click.echo(f"UNKNOWN: {exc}")
            summary.append({"drill": kind, "verdict": "unknown", "code": 2, "line": f"UNKNOWN: {exc}"})
            if "interrupted" in str(exc):
                break
            continue
        click.echo(report.text(result))
        summary.append(
            {
                "drill": kind,
                "verdict": result.verdict,
                "code": result.code,
                "line": result.line(),
                "report": str(base / kind / "report.json"),
            }
        )
        if result.timeline.get("interrupted") is not None:
            break
    return summary, len(kinds)


def _summarize_all(summary: list[dict[str, Any]], planned: int, base: Path) -> int:
    """Write BASE/summary.json, print the verdict line, return the exit code."""
    codes = [s["code"] for s in summary]
    code = 1 if 1 in codes else 2 if 2 in codes or len(codes) < planned else 0
    verdict = {0: "pass", 1: "fail", 2: "unknown"}[code]
    base.mkdir(parents=True, exist_ok=True)
    (base / "summary.json").write_text(
        json.dumps({"schema": "kgt.drill.all/1", "verdict": verdict, "code": code, "drills": summary}, indent=2) + "\n"
    )
    counts = {v: sum(1 for s in summary if s["verdict"] == v) for v in ("pass", "fail", "unknown")}
    click.echo(
        f"{verdict.upper()}: {len(summary)} drills: {counts['pass']} pass, {counts['fail']} fail, "
        f"{counts['unknown']} unknown; reports in {base}"
    )
    return code


def _lab_running(lab_dir: Path) -> bool:
    from toolkit.lab import docker
    from toolkit.lab.state import LabState

    state = LabState(lab_dir)
    return bool(docker.containers(state.project, all_states=False))
