"""`kgt probe nagios-config TOPOLOGY`: Nagios/Icinga 1 object definitions for the site.

Prints commands, one host per topology host (hostgroup per region), a pseudo-host for the
site-wide checks, and the services: `galera` on every Galera node, `haproxy` on every
proxy, `vip` on every keepalived host (through NRPE, because it reads the host's own
addresses; the matching nrpe.cfg lines are printed as comments), `dns` on every DNS
host, and on the site host `galera cluster` plus `keystone from <region>` for each region
(a token issued there, validated everywhere). Paste it into the object configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.topology.model import Topology


def _block(kind: str, fields: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in fields) + 4
    body = "\n".join(f"    {k:<{width}}{v}" for k, v in fields)
    return f"define {kind} {{\n{body}\n}}\n"


def _commands(kgt: str, topology_path: str) -> dict[str, str]:
    """Command name → command line; the probes take the topology as their first argument."""
    return {
        "kgt_galera": f"{kgt} probe galera {topology_path} --node $HOSTNAME$ -t 10",
        "kgt_haproxy": f"{kgt} probe haproxy {topology_path} --proxy $HOSTNAME$ -t 10",
        "kgt_dns": f"{kgt} probe dns {topology_path} --server $HOSTADDRESS$ -t 10",
        "kgt_dns_system": f"{kgt} probe dns {topology_path} -t 10",
        "kgt_cluster": f"{kgt} probe cluster {topology_path} -w $ARG1$ -c $ARG2$ -t 20",
        "kgt_keystone": f"{kgt} probe keystone {topology_path} --issue-region $ARG1$ -w $ARG2$ -c $ARG3$ -t 20",
        "kgt_nrpe": "$USER1$/check_nrpe -H $HOSTADDRESS$ -t 20 -c $ARG1$",
        "kgt_host_alive": "$USER1$/check_ping -H $HOSTADDRESS$ -w 3000.0,80% -c 5000.0,100% -p 5",
        "kgt_site_alive": "$USER1$/check_dummy 0 'site-wide kgt checks run from the monitoring host'",
    }


def _host_blocks(topology: Topology, site: str) -> list[str]:
    """The host templates, a hostgroup per region, every host, and the site's pseudo-host."""
    out = []
    for name, alive in (("kgt-host", "kgt_host_alive"), ("kgt-site", "kgt_site_alive")):
        template = [("name", name), ("use", "generic-host"), ("check_command", alive), ("check_period", "24x7")]
        out.append(
            _block("host", [*template, ("max_check_attempts", "5"), ("contact_groups", "admins"), ("register", "0")])
        )
    for region in topology.regions:
        out.append(
            _block(
                "hostgroup",
                [("hostgroup_name", f"kgt-{region.name}"), ("alias", f"kgt {topology.name} region {region.name}")],
            )
        )
    for host in topology.hosts:
        out.append(
            _block(
                "host",
                [
                    ("use", "kgt-host"),
                    ("host_name", host.name),
                    ("alias", f"{host.name} ({', '.join(sorted(host.roles))})"),
                    ("address", str(host.address)),
                    ("hostgroups", f"kgt-{host.region}"),
                ],
            )
        )
    site_alias = f"kgt site {topology.name} (checks run from the monitoring host)"
    out.append(
        _block("host", [("use", "kgt-site"), ("host_name", site), ("alias", site_alias), ("address", "127.0.0.1")])
    )
    return out


def _service(host: str, description: str, command: str) -> str:
    fields = [("use", "generic-service"), ("host_name", host), ("service_description", description)]
    return _block("service", [*fields, ("check_command", command)])


def _services(topology: Topology, site: str) -> list[str]:
    """galera, haproxy, vip (through NRPE) and dns on their hosts; the site-wide ones on the site."""
    out = [_service(h.name, "galera", "kgt_galera") for h in topology.galera_nodes]
    out += [_service(h.name, "haproxy", "kgt_haproxy") for h in topology.with_role("haproxy")]
    out += [_service(h.name, "vip", "kgt_nrpe!kgt_vip") for h in topology.with_role("keepalived")]
    dns_hosts = topology.with_role("dns")
    out += [_service(h.name, "dns", "kgt_dns") for h in dns_hosts]
    if not dns_hosts and topology.vips:
        out.append(_service(site, "dns", "kgt_dns_system"))
    # Missing voters: WARNING above 0, CRITICAL above a minority (losing Primary is CRITICAL anyway).
    out.append(_service(site, "galera cluster", f"kgt_cluster!0!{max(1, (len(topology.voters) - 1) // 2)}"))
    if topology.with_role("keystone"):
        out += [
            _service(site, f"keystone from {r.name}", f"kgt_keystone!{r.name}!1!5") for r in topology.regions if r.vips
        ]
    return out


def definitions(topology: Topology, kgt: str, topology_path: str, hosts: bool = True) -> str:
    """The whole object configuration as text."""
    site = f"kgt-{topology.name}"
    out = [
        f"# kgt probes for topology {topology.name}, written by `kgt probe nagios-config`.",
        "# Uses the sample objects of Nagios/Icinga 1 (templates generic-host and generic-service,",
        "# timeperiod 24x7, contact group admins) and the monitoring plugins in $USER1$. The",
        f"# monitoring host needs {kgt}, {topology_path} and read access to the secrets file it names.",
        "# Each proxy runs the vip probe through NRPE; add to its nrpe.cfg:",
    ]
    for host in topology.with_role("keepalived"):
        out.append(f"#   {host.name}: command[kgt_vip]={kgt} probe vip {topology_path} --host {host.name} -t 10")
    out.append("")
    commands = _commands(kgt, topology_path)
    out += [_block("command", [("command_name", name), ("command_line", cmd)]) for name, cmd in commands.items()]
    if hosts:
        out += _host_blocks(topology, site)
    out += _services(topology, site)
    return "\n".join(out)


def main(*, topology: Path, kgt_path: str, topology_path: str | None, no_hosts: bool) -> int:
    """Print the definitions; a bad topology is one UNKNOWN line and exit 3."""
    import click

    from toolkit.probes import targets
    from toolkit.probes.runtime import failure_text, unknown

    try:
        model_ = targets.load(topology)
    except Exception as exc:  # the probe edge: one UNKNOWN line, never a traceback
        click.echo(unknown("kgt nagios-config", failure_text(exc)))
        return 3
    click.echo(definitions(model_, kgt_path, topology_path or str(topology.resolve()), hosts=not no_hosts))
    return 0
