"""`kgt pki init | status | rotate`: the click side of the site PKI.

Exit codes (README, "Command-line conventions and exit codes"): 0 done / every
certificate good; 1 invalid input (topology, PKI files, the operator's CA given to
`init`/`rotate`) and, for `status`, any certificate missing, invalid, not matching its
host, expired or expiring within `--warn-days`; 2 a usage error. Nothing here prints a key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit.cli_options import FamilyGroup, output_format
from toolkit.cli_options import topology as topology_argument

if TYPE_CHECKING:
    from toolkit.topology.model import Topology

WARN_DAYS = 30


@click.group(cls=FamilyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def pki() -> None:
    """The site CA and one certificate per host (keys 0600, never printed).

    Files live in the topology's `tls.dir` (default: TOPOLOGY's name with `.pki`, beside it).
    """


def _load(path: Path) -> Topology:
    """The topology, its warnings on stderr (the core commands' loader)."""
    from toolkit.cli import _load as load

    return load(path)


def _say(lines: list[str], nothing: str) -> None:
    for line in lines or [nothing]:
        click.echo(line)


@pki.command("init")
@topology_argument()
def init(topology: Path) -> None:
    """Create the CA and every host certificate that is missing; a second run changes nothing."""
    from toolkit.pki import store

    model = _load(topology)
    done = store.init(model)
    _say(done, f"{store.Site.of(model).dir}: nothing to do: the CA and all {len(model.hosts)} host certificates exist")


@pki.command("status")
@topology_argument()
@click.option(
    "--warn-days",
    type=click.IntRange(min=0),
    default=WARN_DAYS,
    show_default=True,
    help="a certificate with fewer days left needs attention (exit 1)",
)
@output_format()
@click.pass_context
def status(ctx: click.Context, topology: Path, warn_days: int, fmt: str) -> None:
    """List every certificate: host, names, not-after, days left; exit 1 when one needs attention."""
    from toolkit.pki import status as impl

    text, good = impl.report(_load(topology), warn_days, fmt)
    click.echo(text)
    ctx.exit(0 if good else 1)


@pki.command("rotate")
@topology_argument()
@click.option(
    "--host", "hosts", multiple=True, metavar="HOST", help="only this host (repeatable) [default: every host]"
)
@click.option("--ca", "new_ca", is_flag=True, help="a new CA, trusted beside the old one (host certificates untouched)")
@click.option("--retire", is_flag=True, help="trust only the current CA (once every host certificate is under it)")
def rotate(topology: Path, hosts: tuple[str, ...], new_ca: bool, retire: bool) -> None:
    """Re-issue host certificates (new keys), or start (--ca) or finish (--retire) a CA rotation."""
    from toolkit.pki import store

    if sum((bool(hosts), new_ca, retire)) > 1:
        raise click.UsageError("give one of --host, --ca and --retire")
    model = _load(topology)
    if new_ca:
        done = store.rotate_ca(model)
    elif retire:
        done = store.retire(model)
    else:
        done = store.rotate_hosts(model, hosts)
    _say(done, f"{store.Site.of(model).tls.ca_file}: nothing to retire: it trusts only the current CA")
