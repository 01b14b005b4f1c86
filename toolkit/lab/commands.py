"""`kgt lab up | status | exec | wan | down`: the Docker lab from the command line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import click

from toolkit.cli_options import FamilyGroup, output_format
from toolkit.cli_options import secrets as secrets_option
from toolkit.cli_options import topology as topology_argument
from toolkit.errors import KgtError, LabError, UsageError

lab_dir_opt = click.option(
    "--lab-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".kgt-lab"),
    show_default=True,
    help="where the lab keeps its rendered files and state",
)


def source_root() -> Path:
    """The toolkit source tree mounted into the containers (the live code, not the image's copy)."""
    return Path(__file__).resolve().parents[2]


def _topology_of(lab_dir: Path):  # type: ignore[no-untyped-def]
    from toolkit.lab.state import LabState
    from toolkit.topology import load

    state = LabState(lab_dir)
    info = state.require()
    return state, load(info["topology"])


@click.group(cls=FamilyGroup, usage_exit=2)
def lab() -> None:
    """Boot a rendered topology for real in Docker, inspect it, shape its WAN, tear it down."""


@lab.command()
@topology_argument()
@secrets_option
@lab_dir_opt
def up(topology: Path, secrets_path: Path | None, lab_dir: Path) -> None:
    """Render TOPOLOGY and boot it: Galera, health, HAProxy, keepalived, memcached, Keystone, DNS."""
    from toolkit import secretstore
    from toolkit.lab import boot, compose, docker
    from toolkit.lab.state import LabState
    from toolkit.pki.store import prepare
    from toolkit.render import engine, output
    from toolkit.topology import load_with_warnings

    model, warnings = load_with_warnings(topology)  # invalid input fails before Docker is touched
    for warning in warnings:
        click.echo(str(warning), err=True)
    compose.check_addresses(model)
    secrets = secretstore.for_topology(model, secrets_path)
    for line in prepare(model):  # the site PKI before Docker is touched (tls.create makes it)
        click.echo(line, err=True)
    docker.require_engine()
    project = compose.project_name(model)
    running = docker.containers(project, all_states=False)
    if running:
        raise LabError(
            f"lab {project} is already up ({len(running)} containers); `kgt lab down --lab-dir {lab_dir}` first"
        )
    if docker.containers(project):
        click.echo(
            f"removing the stopped containers of an earlier {project} lab: "
            f"{len(docker.remove_project(project))} objects",
            err=True,
        )
    clash = [h.name for h in model.hosts if docker.docker("inspect", h.name, timeout=15).ok]
    if clash:
        raise LabError(f"containers named {', '.join(clash)} exist already and are not this lab's; remove them first")
    state = LabState(lab_dir.absolute())
    output.write(model, engine.render(model, secrets), state.rendered, force=True)
    secrets_file = (secrets_path or model.secrets_file).absolute()
    state.save(topology=str(topology.absolute()), secrets=str(secrets_file), project=project)
    try:
        boot.up(model, secrets, state, source_root(), click.echo)
    except KgtError:
        click.echo(
            f"lab up failed; the containers are left for inspection: `kgt lab status --lab-dir {lab_dir}`, "
            f"`kgt lab down --lab-dir {lab_dir}`",
            err=True,
        )
        raise


@lab.command()
@lab_dir_opt
@output_format()
def status(lab_dir: Path, fmt: str) -> None:
    """A table: host, region, roles, service states, wsrep status, VIPs held."""
    from toolkit.lab import docker
    from toolkit.lab import status as st

    docker.require_engine()
    _, model = _topology_of(lab_dir)
    rows = st.collect(model)
    if fmt == "json":
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        click.echo(st.table(rows))


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@lab_dir_opt
def exec_(host: str, command: tuple[str, ...], lab_dir: Path) -> None:
    """Run COMMAND in HOST's container: `kgt lab exec r1-db1 -- mariadb -e 'show status'`."""
    _, model = _topology_of(lab_dir)
    names = {h.name for h in model.hosts} | {"kgt-wan"}
    if host not in names:
        raise UsageError(f"unknown host '{host}' (hosts: {', '.join(sorted(names))})")
    if shutil.which("docker") is None:
        raise LabError("docker is not installed")
    tty = ["-t"] if os.isatty(0) and os.isatty(1) else []
    raise SystemExit(subprocess.call(["docker", "exec", "-i", *tty, host, *command]))


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text.strip())
    if not match:
        raise UsageError(f"--rtt: '{text}' is not a duration like 50ms or 0.2s")
    return float(match.group(1)) / (1000 if (match.group(2) or "ms") == "ms" else 1)


def _percent(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%?", text.strip())
    if not match or float(match.group(1)) > 100:
        raise UsageError(f"--loss: '{text}' is not a percentage like 1%")
    return float(match.group(1))


@lab.command()
@click.option("--rtt", help="round-trip time added between regions, e.g. 50ms")
@click.option("--between", help="only between these two regions: r1,r3")
@click.option("--loss", help="packet loss between regions, e.g. 1%")
@click.option("--cut", "cut_region", help="cut region R off from all others (both ways)")
@click.option("--clear", is_flag=True, help="remove every delay, loss and cut")
@lab_dir_opt
def wan(
    rtt: str | None, between: str | None, loss: str | None, cut_region: str | None, clear: bool, lab_dir: Path
) -> None:
    """Delay, drop or cut cross-region traffic only (netem where the kernel has it, else the WAN router)."""
    from toolkit.lab import network

    chosen = sum(bool(x) for x in (rtt or loss, cut_region, clear))
    if chosen != 1:
        raise UsageError("give exactly one of --rtt/--loss, --cut R or --clear")
    _, model = _topology_of(lab_dir)
    regions = {r.name for r in model.regions}
    if clear:
        network.heal(model, keep_setting=False)
        click.echo("wan: cleared (no delay, no loss, no cut)")
        return
    if cut_region:
        if cut_region not in regions:
            raise UsageError(f"--cut: unknown region '{cut_region}' (regions: {', '.join(sorted(regions))})")
        network.cut(model, cut_region)
        click.echo(f"wan: region {cut_region} cut off from {', '.join(sorted(regions - {cut_region}))}")
        return
    pair = None
    if between:
        parts = tuple(p.strip() for p in between.split(","))
        if len(parts) != 2 or not set(parts) <= regions or parts[0] == parts[1]:
            raise UsageError(f"--between: want two different regions of {', '.join(sorted(regions))}, got '{between}'")
        pair = (parts[0], parts[1])
    spec = network.WanSpec(rtt=_duration(rtt) if rtt else 0.0, loss_pct=_percent(loss) if loss else 0.0, between=pair)
    path = network.apply_wan(model, spec, as_setting=True)
    click.echo(f"wan: {spec.describe()} (via {path})")


@lab.command()
@lab_dir_opt
@click.option("--keep-data", is_flag=True, help="keep the Galera data volumes")
def down(lab_dir: Path, keep_data: bool) -> None:
    """Remove the lab's containers and network (and data volumes unless --keep-data)."""
    from toolkit.lab import docker
    from toolkit.lab.state import LabState

    state = LabState(lab_dir)
    state.require()
    docker.require_engine()
    args = ["down", "--remove-orphans", "-t", "5"] + ([] if keep_data else ["-v"])
    result = docker.compose(state.compose_file, state.project, *args, timeout=300)
    left = docker.containers(state.project)
    if not result.ok or left:
        # What compose left (it gave up on a slow engine, or was interrupted): removed by label.
        click.echo(f"docker-compose down did not finish ({result.stderr.strip()[-300:]}); removing by label", err=True)
        docker.remove_project(state.project, keep_volumes=keep_data)
        left = docker.containers(state.project)
    if left:
        raise LabError(f"containers left behind: {', '.join(left)}")
    click.echo(f"lab {state.project} is down" + (" (data volumes kept)" if keep_data else ""))
