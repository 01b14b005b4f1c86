"""The `kgt` command line: the core commands here, the rest loaded lazily from sub-packages.

Every KgtError becomes its message on stderr and its exit code; nothing ends in a
traceback. Sub-command groups (lab, check, probe, drill, health) are imported only when
used, so a probe does not pay for what it does not run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit import __version__
from toolkit.cli_options import FamilyGroup, output_format, selection
from toolkit.cli_options import secrets as secrets_option
from toolkit.cli_options import topology as topology_argument
from toolkit.errors import KgtError, PkiError, SecretsError, TopologyError

if TYPE_CHECKING:
    from toolkit.render.diff import Change
    from toolkit.topology.model import Topology

LAZY = {
    "health": "toolkit.health.commands:health",
    "lab": "toolkit.lab.commands:lab",
    "check": "toolkit.check.commands:check",
    "probe": "toolkit.probes.commands:probe",
    "drill": "toolkit.drills.commands:drill",
    "pki": "toolkit.pki.commands:pki",
    "agent": "toolkit.rollout.commands:agent",
    "rollout": "toolkit.rollout.commands:rollout",
}


class LazyGroup(FamilyGroup):
    """A click group whose sub-groups are imported on first use; usage errors exit 2 (the core family)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The core commands and every lazy group whose module is present."""
        return sorted([*super().list_commands(ctx), *(n for n in LAZY if self._available(n))])

    @staticmethod
    def _available(name: str) -> bool:
        module = LAZY[name].split(":")[0]
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package itself is absent
            return False

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The command `name`, importing a lazy group on first use."""
        if name in LAZY and self._available(name):
            module, attr = LAZY[name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
# The version from the package itself: metadata lookup fails in a checkout run as `python3 -m toolkit.cli`.
@click.version_option(version=__version__, prog_name="kgt")
def cli() -> None:
    """kgt: one Keystone across regions on one geo-distributed Galera cluster."""


def _load(path: Path) -> Topology:
    from toolkit.topology import load_with_warnings

    topology, warnings = load_with_warnings(path)
    for warning in warnings:
        click.echo(str(warning), err=True)
    return topology


@cli.command()
@topology_argument()
def validate(topology: Path) -> None:
    """Check a topology file; every error as FILE:LINE: PATH: MESSAGE."""
    model = _load(topology)
    click.echo(
        f"{topology}: ok: {len(model.regions)} regions, {len(model.hosts)} hosts, "
        f"{len(model.voters)} voters, total weight {model.total_weight}"
    )


@cli.command()
@topology_argument()
@output_format()
@click.option(
    "--depth",
    type=click.IntRange(1, 3),
    default=1,
    show_default=True,
    help="every combination of up to N simultaneous events (from 2: clean stops too)",
)
@click.option(
    "--sequence", is_flag=True, help="every event, then every other after the cluster re-formed; and the failure budget"
)
@click.option("--fail", help="what-if: events at once, e.g. 'r1-db1,isolate:r3' or 'lose region r3,restart r1-db2'")
@click.option("--then", "then", multiple=True, help="with --fail: the next step, after the cluster re-formed")
@click.option("-v", "--verbose", is_flag=True, help="--depth/--sequence: list every scenario")
def analyze(
    topology: Path, fmt: str, depth: int, sequence: bool, fail: str | None, then: tuple[str, ...], verbose: bool
) -> None:
    """Say which failures the topology survives: single ones, combined, one after another, or named.

    Events are named as the scenarios: `lose r1-db1` (or `r1-db1`), `lose region r3` (or `r3`),
    `isolate region r3` (`isolate:r3`), `split {r1,r2} | {r3,r4}` (`split:r1+r2`), and
    `restart r1-db2` (`restart:r1-db2`: a clean stop, as in a rolling restart). The JSON forms
    are documented in toolkit/analysis/report.py; a single-failure scenario:
    {"kind": "node-loss|region-loss|region-isolated|split", "name": str, "components":
    [{"regions", "hosts", "weight", "primary"}], "survives": bool, "regions": {R: {"database":
    "primary|read-only|down", "keystone": "writable|read-only|down|none"}}}; the default output
    is {"total_weight": W, "scenarios": [...], "fixes": [str], "notes": [str]}.
    """
    from toolkit.analysis.commands import run

    run(_load(topology), fmt, depth, sequence, fail, then, verbose, click.echo)


@cli.command()
@topology_argument()
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@secrets_option
@click.option("--force", is_flag=True, help="replace a non-empty directory kgt did not write")
@selection()
def render(
    topology: Path, out: Path, secrets_path: Path | None, force: bool, regions: tuple[str, ...], hosts: tuple[str, ...]
) -> None:
    """Render every per-host config into OUTPUT/<host>/, plus dns/, sql/ and manifest.json.

    With --region/--host, only those hosts' files (and the site's dns/ and sql/) are written.
    """
    from toolkit import secretstore
    from toolkit.pki.store import prepare
    from toolkit.render import engine, output
    from toolkit.render.select import Selection

    model = _load(topology)
    chosen = Selection(regions, hosts).check(model)
    for line in prepare(model):  # certificates checked before anything is rendered or written
        click.echo(line, err=True)
    files = [
        f for f in engine.render(model, secretstore.for_topology(model, secrets_path)) if chosen.keeps(model, f.host)
    ]
    output.write(model, files, out, force=force)
    count = len({f.host for f in files if f.host})
    click.echo(f"rendered {len(files)} files for {count} hosts ({chosen.describe()}) into {out}")


@cli.command()
@topology_argument()
@click.option("--against", required=True, type=click.Path(file_okay=False, path_type=Path))
@secrets_option
@selection()
def diff(
    topology: Path, against: Path, secrets_path: Path | None, regions: tuple[str, ...], hosts: tuple[str, ...]
) -> None:
    """Show what a render would change in AGAINST (secrets masked) and the reload plan.

    With --region/--host, only those hosts' files (and the site's dns/ and sql/) are compared.
    """
    from toolkit import secretstore
    from toolkit.pki.verify import check_certificates
    from toolkit.render import diff as differ
    from toolkit.render import engine
    from toolkit.render.select import Selection

    model = _load(topology)
    chosen = Selection(regions, hosts).check(model)
    secrets = secretstore.for_topology(model, secrets_path)
    if model.tls_on:
        check_certificates(model)  # the same check as render's: one line per bad certificate
    files = [f for f in engine.render(model, secrets) if chosen.keeps(model, f.host)]
    names = {h.name for h in model.hosts}

    def keep(path: str) -> bool:
        first = path.split("/", 1)[0]
        return chosen.keeps(model, first if first in names else None)

    changed = differ.changes(files, against, secrets, keep)
    echo_changes(model, changed)


@cli.command()
@topology_argument()
@secrets_option
@selection()
@click.option("--dry-run", is_flag=True, help="show per host what would change against what is published, and the plan")
def publish(
    topology: Path, secrets_path: Path | None, regions: tuple[str, ...], hosts: tuple[str, ...], dry_run: bool
) -> None:
    """Render in memory and write a new generation to etcd for every host whose files changed.

    Each host's agent applies it (README: Rollout). With --region/--host only those hosts
    get it (a canary region first). A publish that changes nothing writes nothing.
    """
    from toolkit import secretstore
    from toolkit.pki.verify import check_certificates
    from toolkit.render.select import Selection
    from toolkit.rollout import publish as publisher
    from toolkit.store import Store

    model = _load(topology)
    chosen = Selection(regions, hosts).check(model)
    secrets = secretstore.for_topology(model, secrets_path)
    if model.tls_on:
        check_certificates(model)
    if not dry_run:
        publisher.publish(model, secrets, chosen, click.echo)
        return
    with Store(publisher.root_settings(model, secrets)) as store:
        plans = publisher.plan(store, model, secrets, chosen)
        for p in plans:
            now = f"generation {p.current.generation}" if p.current else "nothing published"
            click.echo(f"{p.host}: {now}; {'would publish' if p.changed else 'unchanged'}")
        echo_changes(model, publisher.dry_run(store, model, secrets, plans))


def echo_changes(model: Topology, changed: list[Change]) -> None:
    """The changes host by host, then the reload plan (`kgt diff`, `kgt publish --dry-run`)."""
    from toolkit.render import diff as differ
    from toolkit.render.engine import TOPOLOGY_FILE

    if not changed:
        click.echo("no changes")
        return
    copies = [c for c in changed if c.path.endswith(TOPOLOGY_FILE)]
    if len(copies) > 1:  # every host's copy of the topology changes with it: shown once
        click.echo(f"== every host ({len(copies)})")
        click.echo(f"{copies[0].status}: <host>{TOPOLOGY_FILE}")
        click.echo(copies[0].diff, nl=False)
        changed = [c for c in changed if c not in copies]
    for host in sorted({c.host or "site" for c in changed}):
        click.echo(f"== {host}")
        for change in (c for c in changed if (c.host or "site") == host):
            click.echo(f"{change.status}: {change.path}")
            click.echo(change.diff, nl=False)
    click.echo("== reload plan")
    for i, step in enumerate(differ.reload_plan(model, changed), 1):
        click.echo(f"{i}. {step}")


@cli.group(cls=FamilyGroup)
def secrets() -> None:
    """Generate and rotate the secrets a topology needs (values are never printed)."""


@secrets.command("init")
@topology_argument()
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path), help="default: the topology's")
def secrets_init(topology: Path, path: Path | None) -> None:
    """Create or complete the secrets file with strong random values (mode 0600)."""
    from toolkit import secretstore

    model = _load(topology)
    target = path or model.secrets_file
    added = secretstore.init(model, target)
    click.echo(f"{target}: added {', '.join(added)}" if added else f"{target}: complete, nothing added")


@secrets.command("rotate")
@click.argument("name")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def secrets_rotate(name: str, path: Path) -> None:
    """Replace one secret with a new random value; render and reload afterwards."""
    from toolkit import secretstore

    secretstore.rotate(path, name)
    click.echo(f"{path}: rotated {name}; run `kgt render` and the reload plan of `kgt diff`")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of topology files (for editors)."""
    from toolkit.topology.document import TopologyDoc

    click.echo(json.dumps(TopologyDoc.model_json_schema(), indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (errors as one line each, never a traceback)."""
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        code = cli.main(args=argv, prog_name="kgt", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("kgt: interrupted", err=True)
        return 130
    except (TopologyError, PkiError) as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        return exc.exit_code
    except SecretsError as exc:
        # Its message starts with FILE[:LINE]: like a topology problem, so editors can jump to it.
        click.echo(str(exc), err=True)
        return exc.exit_code
    except KgtError as exc:
        click.echo(f"kgt: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("kgt: interrupted", err=True)
        return 130
    except Exception as exc:  # the edge: never show a traceback to a user
        click.echo(f"kgt: internal error: {exc.__class__.__name__}: {exc}", err=True)
        return 70
    return code if isinstance(code, int) else 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
