"""`kgt probe …`: the click side of the Nagios/Icinga probes.

Only click is imported here; each command imports its probe module when it runs, so
`kgt probe galera` pays for pymysql and nagiosplugin, never for keystoneauth1, dnspython
or jinja2. A usage error inside `kgt probe` (unknown option, bad range, missing value)
is one UNKNOWN line and exit 3, as a monitoring system expects, not click's exit 2.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from toolkit.cli_options import FamilyGroup
from toolkit.cli_options import secrets as secrets_option
from toolkit.cli_options import topology as topology_argument

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

PROBES = ("galera", "cluster", "haproxy", "vip", "keystone", "dns", "cert", "nagios-config")


def _usage_error(exc: click.UsageError, ctx: click.Context) -> None:
    """A usage error as the probe's status line: `KGT <PROBE> UNKNOWN - …` on stdout."""
    from toolkit.probes.runtime import unknown

    where = exc.ctx
    name = where.command.name if where is not None and where.command is not ctx.command else "probe"
    message = exc.format_message()
    if name == "probe" and "No such command" in message:
        message += f" (probes: {', '.join(PROBES)})"
    click.echo(unknown(f"kgt {name or 'probe'}", message))


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


def _pairs_option(*decls: str, metavar: str, help: str) -> Decorator:
    """A repeatable NAME=VALUE option, given to the probe as a dict."""
    return click.option(*decls, multiple=True, callback=_pairs, metavar=metavar, help=help)


def thresholds(what: str, warning: str | None = None, critical: str | None = None) -> Callable[[F], F]:
    """-w/--warning and -c/--critical as Nagios ranges judging `what`."""

    def decorate(func: F) -> F:
        for short, long, default, state in (
            ("-c", "--critical", critical, "CRITICAL"),
            ("-w", "--warning", warning, "WARNING"),
        ):
            shown = f" [default: {default}]" if default else ""
            func = click.option(
                short,
                long,
                callback=_range,
                default=default,
                help=f"Nagios range for {what}: {state} outside it{shown}",
            )(func)
        return func

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


def login(user: str, *, required: bool = False) -> Callable[[F], F]:
    """The topology, --secrets, --user and --password-file, for probes that log in somewhere."""

    def decorate(func: F) -> F:
        func = _ca_option(func)
        func = password_file(func)
        func = click.option("--user", default=user, show_default=True)(func)
        func = secrets_option(func)
        return topology_argument(required=required)(func)

    return decorate


_ca_option = click.option(
    "--ca",
    "tls_ca",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA bundle to verify the server with (TLS) [default: the topology's, on a TLS site]",
)

password_file = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file whose first line is the password (instead of the secrets file)",
)


def _run(ctx: click.Context, probe: str, opts: dict[str, Any]) -> None:
    """Import the probe's module (only now: each pays for its own libraries) and exit with its code."""
    from toolkit.probes.runtime import ProbeArgs

    args, own = ProbeArgs.split(opts)
    ctx.exit(importlib.import_module(f"toolkit.probes.{probe}").main(args, **own))


def _command(name: str, summary: str, *options: Decorator) -> click.Command:
    """`kgt probe NAME`: its options (as listed in --help), then -t and -v; it runs toolkit.probes.NAME."""

    def command(ctx: click.Context, /, **opts: Any) -> None:
        _run(ctx, name, opts)

    command.__doc__ = summary
    func: Callable[..., Any] = click.pass_context(command)
    for option in reversed((*options, common)):
        func = option(func)
    return probe.command(name)(func)


@click.group(
    cls=FamilyGroup, usage_exit=3, on_usage_error=_usage_error, context_settings={"help_option_names": ["-h", "--help"]}
)
def probe() -> None:
    """Nagios/Icinga probes: one status line with perfdata, exit 0/1/2/3.

    TOPOLOGY, the first argument, is the topology file: what the site should look like.
    """


galera = _command(
    "galera",
    "One Galera node: Primary, Synced, ready, connected; wsrep perfdata.",
    click.option("-H", "--host", help="node address (default: the topology's, with --node)"),
    click.option("-P", "--port", type=click.IntRange(1, 65535), help="MariaDB port [default: topology's or 3306]"),
    click.option("--node", help="node name in the topology"),
    login("kgt_health"),
    thresholds("wsrep_cluster_size (default with a topology: WARNING below the topology's voters)"),
    click.option("--fc-warning", callback=_range, help="Nagios range for wsrep_flow_control_paused (0..1)"),
    click.option("--fc-critical", callback=_range, help="Nagios range for wsrep_flow_control_paused (0..1)"),
)


cluster = _command(
    "cluster",
    "The whole cluster: quorum, missing nodes per region, split brain.",
    login("kgt_health", required=True),
    thresholds("voters outside the Primary component", warning="0"),
)


haproxy = _command(
    "haproxy",
    "One HAProxy: backends with no server up, regions served from another region.",
    click.option("--url", help="stats URL, e.g. http://10.213.1.21:8404/stats"),
    click.option("-H", "--host", help="stats listener address (default: the proxy's, with --proxy)"),
    click.option("-P", "--port", type=click.IntRange(1, 65535), help="stats port [default: topology's or 8404]"),
    click.option(
        "--socket",
        "socket_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="read `show stat` from the admin socket instead of HTTP",
    ),
    click.option("--proxy", help="proxy name in the topology (maps servers to regions)"),
    login("kgt"),
    thresholds("servers up per backend", critical="1:"),
)


vip = _command(
    "vip",
    "VRRP: this host holds exactly its MASTER VIPs; with --all, none held twice or by nobody.",
    topology_argument(),
    click.option("--host", "host_name", help="this proxy's name in the topology [default: hostname]"),
    click.option("--all", "all_hosts", is_flag=True, help="judge every VIP of the site from --observe"),
    _pairs_option(
        "--observe", metavar="HOST=IP[,IP…]", help="with --all: the addresses HOST holds (repeatable; HOST= for none)"
    ),
    click.option(
        "--addr-json",
        type=click.Path(dir_okay=False, path_type=Path),
        hidden=True,
        help="read `ip -j addr` output from a file (tests)",
    ),
)


_ENDPOINT = "Keystone v3 URL of a region (repeatable; default: first VIP of each region)"
keystone = _command(
    "keystone",
    "Issue a token in one region, validate it in every region (Fernet keys in sync).",
    login("admin"),
    _pairs_option("--endpoint", "endpoints", metavar="REGION=URL", help=_ENDPOINT),
    click.option("--issue-region", help="region whose endpoint issues the token [default: the first]"),
    click.option("--project", default="admin", show_default=True),
    click.option("--domain", default="Default", show_default=True),
    thresholds("issue and validate latency in seconds"),
)


_EXPECT = "a name and its addresses, instead of (or besides) the topology's"
dns = _command(
    "dns",
    "Every regional endpoint name resolves to exactly the topology's VIPs.",
    topology_argument(required=False),
    _pairs_option("--expect", "expected", metavar="FQDN=IP[,IP…]", help=_EXPECT),
    click.option("--server", help="DNS server address [default: the system resolver]"),
    click.option("-p", "--port", type=click.IntRange(1, 65535), default=53, show_default=True),
    thresholds("the slowest resolve time in seconds"),
)


cert = _command(
    "cert",
    "The certificate a service presents: signed by the site CA, the expected names, days left.",
    topology_argument(required=False),
    click.option("-H", "--host", help="address to connect to (default: the topology's, with --node/--vip)"),
    click.option("-P", "--port", type=click.IntRange(1, 65535), help="port (default with --node/--vip: the service's)"),
    click.option("--node", help="a host of the topology: its address and every name its certificate must carry"),
    click.option("--vip", help="a VIP of the topology: its address, its region's Keystone (or db) name"),
    click.option(
        "--name", "names", multiple=True, help="a name the certificate must carry (repeatable; replaces the topology's)"
    ),
    click.option(
        "--ca", type=click.Path(dir_okay=False, path_type=Path), help="CA bundle [default: the topology's tls: bundle]"
    ),
    click.option(
        "--protocol",
        type=click.Choice(["tls", "mysql"]),
        help="tls: TLS at once; mysql: MySQL SSLRequest first [default: mysql on port 3306 and for Galera nodes]",
    ),
    thresholds("days left (e.g. 30: = WARNING under 30 days)", warning="30:", critical="7:"),
)


@probe.command("nagios-config")
@topology_argument()
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
