"""`kgt probe …`: the click side of the Nagios/Icinga probes.

Only click is imported here; each command imports its probe module when it runs, so
`kgt probe galera` pays for pymysql and nagiosplugin, never for keystoneauth1, dnspython
or jinja2. A usage error inside `kgt probe` (unknown option, bad range, missing value)
is one UNKNOWN line and exit 3, as a monitoring system expects, not click's exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

PROBES = ("galera", "cluster", "haproxy", "vip", "keystone", "dns", "nagios-config")


def _unknown(name: str, message: str) -> None:
    from toolkit.probes.runtime import line

    click.echo(line(f"kgt {name}", "UNKNOWN", message))


class ProbeGroup(click.Group):
    """A group whose usage errors become `KGT <PROBE> UNKNOWN - …` and exit 3."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse `kgt probe`'s own options; a usage error is UNKNOWN."""
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            _unknown("probe", exc.format_message())
            ctx.exit(3)
            raise  # unreachable: ctx.exit raises

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; its usage errors (and an unknown probe) are UNKNOWN."""
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            where = getattr(exc, "ctx", None)
            name = where.command.name if where is not None and where.command is not self else "probe"
            message = exc.format_message()
            if name == "probe" and "No such command" in message:
                message += f" (probes: {', '.join(PROBES)})"
            _unknown(name or "probe", message)
            ctx.exit(3)


def _range(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    import nagiosplugin

    try:
        nagiosplugin.Range(value)
    except ValueError:
        raise click.BadParameter(f"not a Nagios range: {value!r} (e.g. 5, 10:, ~:3, @1:2)") from None
    return value


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}")
        out[key] = rest
    return out


def thresholds(what: str, warning: str | None = None, critical: str | None = None) -> Callable[[F], F]:
    """-w/--warning and -c/--critical as Nagios ranges judging `what`."""

    def decorate(func: F) -> F:
        func = click.option(
            "-c",
            "--critical",
            callback=_range,
            default=critical,
            help=f"Nagios range for {what}: CRITICAL outside it" + (f" [default: {critical}]" if critical else ""),
        )(func)
        return click.option(
            "-w",
            "--warning",
            callback=_range,
            default=warning,
            help=f"Nagios range for {what}: WARNING outside it" + (f" [default: {warning}]" if warning else ""),
        )(func)

    return decorate


def common(func: F) -> F:
    """-t/--timeout and -v/--verbose, which every probe has."""
    func = click.option("-v", "--verbose", count=True, help="one more line per result")(func)
    return click.option(
        "-t",
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=10.0,
        show_default=True,
        help="seconds until the probe gives up (UNKNOWN)",
    )(func)


def topology_options(required: bool = False, secrets: bool = True) -> Callable[[F], F]:
    """--topology, and --secrets for probes that log in somewhere."""

    def decorate(func: F) -> F:
        if not secrets:
            return click.option(
                "--topology",
                type=click.Path(dir_okay=False, path_type=Path),
                required=required,
                help="topology file: what the site should look like",
            )(func)
        func = click.option(
            "--secrets",
            "secrets_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="secrets file (default: the one the topology names)",
        )(func)
        return click.option(
            "--topology",
            type=click.Path(dir_okay=False, path_type=Path),
            required=required,
            help="topology file: what the site should look like",
        )(func)

    return decorate


password_file = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file whose first line is the password (instead of the secrets file)",
)


@click.group(cls=ProbeGroup, context_settings={"help_option_names": ["-h", "--help"]})
def probe() -> None:
    """Nagios/Icinga probes: one status line with perfdata, exit 0/1/2/3."""


@probe.command("galera")
@click.option("-H", "--host", help="node address (default: the topology's, with --node)")
@click.option("-P", "--port", type=click.IntRange(1, 65535), help="MariaDB port [default: topology's or 3306]")
@click.option("--node", help="node name in the topology")
@topology_options()
@click.option("--user", default="kgt_health", show_default=True)
@password_file
@thresholds("wsrep_cluster_size (default with --topology: WARNING below the topology's voters)")
@click.option("--fc-warning", callback=_range, help="Nagios range for wsrep_flow_control_paused (0..1)")
@click.option("--fc-critical", callback=_range, help="Nagios range for wsrep_flow_control_paused (0..1)")
@common
@click.pass_context
def galera(ctx: click.Context, /, **opts: Any) -> None:
    """One Galera node: Primary, Synced, ready, connected; wsrep perfdata."""
    from toolkit.probes import galera as impl

    ctx.exit(impl.main(**opts))


@probe.command("cluster")
@topology_options(required=True)
@click.option("--user", default="kgt_health", show_default=True)
@password_file
@thresholds("voters outside the Primary component", warning="0")
@common
@click.pass_context
def cluster(ctx: click.Context, /, **opts: Any) -> None:
    """The whole cluster: quorum, missing nodes per region, split brain."""
    from toolkit.probes import cluster as impl

    ctx.exit(impl.main(**opts))


@probe.command("haproxy")
@click.option("--url", help="stats URL, e.g. http://10.213.1.21:8404/stats")
@click.option("-H", "--host", help="stats listener address (default: the proxy's, with --proxy)")
@click.option("-P", "--port", type=click.IntRange(1, 65535), help="stats port [default: topology's or 8404]")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="read `show stat` from the admin socket instead of HTTP",
)
@click.option("--proxy", help="proxy name in the topology (maps servers to regions)")
@topology_options()
@click.option("--user", default="kgt", show_default=True)
@password_file
@thresholds("servers up per backend", critical="1:")
@common
@click.pass_context
def haproxy(ctx: click.Context, /, **opts: Any) -> None:
    """One HAProxy: backends with no server up, regions served from another region."""
    from toolkit.probes import haproxy as impl

    ctx.exit(impl.main(**opts))


@probe.command("vip")
@topology_options(required=True, secrets=False)
@click.option("--host", "host_name", help="this proxy's name in the topology [default: hostname]")
@click.option("--all", "all_hosts", is_flag=True, help="judge every VIP of the site from --observe")
@click.option(
    "--observe",
    multiple=True,
    callback=_pairs,
    metavar="HOST=IP[,IP…]",
    help="with --all: the addresses HOST holds (repeatable; HOST= for none)",
)
@click.option(
    "--addr-json",
    type=click.Path(dir_okay=False, path_type=Path),
    hidden=True,
    help="read `ip -j addr` output from a file (tests)",
)
@common
@click.pass_context
def vip(ctx: click.Context, /, **opts: Any) -> None:
    """VRRP: this host holds exactly its MASTER VIPs; with --all, none held twice or by nobody."""
    from toolkit.probes import vip as impl

    ctx.exit(impl.main(**opts))


@probe.command("keystone")
@topology_options()
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    callback=_pairs,
    metavar="REGION=URL",
    help="Keystone v3 URL of a region (repeatable; default: first VIP of each region)",
)
@click.option("--issue-region", help="region whose endpoint issues the token [default: the first]")
@click.option("--user", default="admin", show_default=True)
@click.option("--project", default="admin", show_default=True)
@click.option("--domain", default="Default", show_default=True)
@password_file
@thresholds("issue and validate latency in seconds")
@common
@click.pass_context
def keystone(ctx: click.Context, /, **opts: Any) -> None:
    """Issue a token in one region, validate it in every region (Fernet keys in sync)."""
    from toolkit.probes import keystone as impl

    ctx.exit(impl.main(**opts))


@probe.command("dns")
@topology_options(secrets=False)
@click.option(
    "--expect",
    "expected",
    multiple=True,
    callback=_pairs,
    metavar="FQDN=IP[,IP…]",
    help="a name and its addresses, instead of (or besides) the topology's",
)
@click.option("--server", help="DNS server address [default: the system resolver]")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=53, show_default=True)
@thresholds("the slowest resolve time in seconds")
@common
@click.pass_context
def dns(ctx: click.Context, /, **opts: Any) -> None:
    """Every regional endpoint name resolves to exactly the topology's VIPs."""
    from toolkit.probes import dns as impl

    ctx.exit(impl.main(**opts))


@probe.command("nagios-config")
@click.argument("topology", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--kgt",
    "kgt_path",
    default="/usr/local/bin/kgt",
    show_default=True,
    help="the kgt command on the monitoring host and the proxies",
)
@click.option("--topology-path", help="where the topology lives on those hosts [default: TOPOLOGY, absolute]")
@click.option("--no-hosts", is_flag=True, help="omit host definitions (you already have them)")
@click.pass_context
def nagios_config(ctx: click.Context, /, **opts: Any) -> None:
    """Print Nagios/Icinga 1 object definitions (commands, hosts, services) to paste in."""
    from toolkit.probes import nagios_config as impl

    ctx.exit(impl.main(**opts))
