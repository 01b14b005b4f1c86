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

from toolkit.cli_options import duration as duration_option
from toolkit.errors import UsageError

if TYPE_CHECKING:
    from toolkit.drills.backend import LabBackend
    from toolkit.drills.runner import Timing
    from toolkit.secretstore import Secrets
    from toolkit.topology.model import Topology


def common(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every drill takes."""
    options = [
        click.option(
            "--topology",
            "topology_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="topology file (default: the one the lab was booted from)",
        ),
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
        click.option(
            "--duration",
            default="40s",
            callback=duration_option,
            show_default=True,
            help="the workloads run at least this long",
        ),
        click.option(
            "--fault-at",
            default="8s",
            callback=duration_option,
            show_default=True,
            help="inject the fault this long after the workloads start",
        ),
        click.option(
            "--heal-after",
            default=None,
            callback=duration_option,
            help="heal this long after injecting [default: 14s, longer where the analysis predicts a "
            "read-only region: Galera's and HAProxy's detection bounds, the slack and 5 s to watch "
            "it serve]",
        ),
        click.option(
            "--ready-timeout",
            default="15s",
            callback=duration_option,
            show_default=True,
            help="wait this long for a healthy site before refusing to start",
        ),
        click.option(
            "--healthy-timeout",
            default="90s",
            callback=duration_option,
            show_default=True,
            help="after the heal the site must be healthy again within this",
        ),
        click.option(
            "--report",
            "report_dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="where to write report.json, report.html, history.jsonl",
        ),
        click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True),
    ]
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
            raise UsageError(
                f"--topology {topology_path} is not the topology of the lab in {lab_dir} ({info['topology']})"
            )
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


def _run(kind: str, opts: dict[str, Any], **target: Any) -> None:
    from toolkit.drills import faults, report, runner

    topology, secrets, backend = _context(opts["topology_path"], opts["lab_dir"], opts["secrets_path"])
    fault = faults.resolve(topology, kind, **target)
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


@click.group()
def drill() -> None:
    """Inject one fault into a running site while workloads run, heal it, and judge the history.

    Exit 0 pass, 1 fail, 2 unknown. Ctrl-C heals the fault before exiting.
    """


@drill.command("region-partition")
@click.option("--region", help="the region to cut off (default: the last)")
@common
def region_partition(region: str | None, **opts: Any) -> None:
    """Cut REGION off from every other region, both ways; its hosts keep running."""
    _run("region-partition", opts, region=region)


@drill.command("region-loss")
@click.option("--region", help="the region to lose (default: the last)")
@common
def region_loss(region: str | None, **opts: Any) -> None:
    """Stop every host of REGION; heal starts them and their services in order (IST rejoin)."""
    _run("region-loss", opts, region=region)


@drill.command("keystone-loss")
@click.option("--region", help="the region whose Keystone hosts stop (default: the last)")
@common
def keystone_loss(region: str | None, **opts: Any) -> None:
    """Stop Keystone on every Keystone host of REGION; its endpoint must go on through backups."""
    _run("keystone-loss", opts, region=region)


@drill.command("proxy-loss")
@click.option("--region", help="the region (default: the last)")
@click.option("--host", help="the proxy to stop (default: the MASTER of the region's first VIP)")
@click.option("--kill", is_flag=True, help="kill -9 HAProxy and keepalived instead of stopping them")
@common
def proxy_loss(region: str | None, host: str | None, kill: bool, **opts: Any) -> None:
    """Stop keepalived and HAProxy on a proxy; its VIP must move to another proxy."""
    _run("proxy-loss", opts, region=region, host=host, kill=kill)


@drill.command("node-loss")
@click.option("--host", help="the Galera node to crash (default: the first of the last region)")
@common
def node_loss(host: str | None, **opts: Any) -> None:
    """kill -9 one Galera node; heal restarts it at its recovered position (IST expected)."""
    _run("node-loss", opts, host=host)


@drill.command("wan-degrade")
@click.option("--rtt", default="200ms", callback=duration_option, show_default=True, help="round trip added")
@click.option("--between", help="only between these two regions: r1,r2")
@common
def wan_degrade(rtt: float, between: str | None, **opts: Any) -> None:
    """Add delay between regions; everything must keep working."""
    pair = None
    if between:
        parts = tuple(p.strip() for p in between.split(","))
        if len(parts) != 2:
            raise UsageError(f"--between: want two regions like r1,r2, got '{between}'")
        pair = (parts[0], parts[1])
    _run("wan-degrade", opts, rtt=rtt, between=pair)


@drill.command("all")
@click.option("--keep-lab", is_flag=True, help="leave a lab this command booted running")
@common
def all_drills(keep_lab: bool, **opts: Any) -> None:
    """The standard set in sequence, on the given healthy lab, or on a fresh one booted from --topology."""
    from toolkit.drills import faults, report, runner
    from toolkit.lab import commands as lab_commands
    from toolkit.lab.state import LabState

    ctx = click.get_current_context()
    lab_dir: Path = opts["lab_dir"]
    booted = False
    if not LabState(lab_dir).info() or not _lab_running(lab_dir):
        if opts["topology_path"] is None:
            raise UsageError(f"no lab runs from {lab_dir}: give --topology to boot a fresh one")
        click.echo(f"booting a fresh lab from {opts['topology_path']} in {lab_dir}")
        ctx.invoke(lab_commands.up, topology=opts["topology_path"], secrets_path=opts["secrets_path"], lab_dir=lab_dir)
        booted = True
    base = _report_dir(opts["report_dir"], lab_dir, "all")
    summary: list[dict[str, Any]] = []
    try:
        topology, secrets, backend = _context(opts["topology_path"], lab_dir, opts["secrets_path"])
        rtt = backend.wan_rtt()
        for kind in faults.STANDARD:
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
            except runner.DrillRefused as exc:
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
    finally:
        if booted and not keep_lab:
            ctx.invoke(lab_commands.down, lab_dir=lab_dir, keep_data=False)
    codes = [s["code"] for s in summary]
    code = 1 if 1 in codes else 2 if 2 in codes or len(codes) < len(faults.STANDARD) else 0
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
    ctx.exit(code)


def _lab_running(lab_dir: Path) -> bool:
    from toolkit.lab import docker
    from toolkit.lab.state import LabState

    state = LabState(lab_dir)
    return bool(docker.containers(state.project, all_states=False))
