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

from toolkit.probes.runtime import line

if TYPE_CHECKING:
    from toolkit.topology.model import Topology


def _block(kind: str, fields: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in fields) + 4
    body = "\n".join(f"    {k:<{width}}{v}" for k, v in fields)
    return f"define {kind} {{\n{body}\n}}\n"


def definitions(topology: Topology, kgt: str, topology_path: str, hosts: bool = True) -> str:
    """The whole object configuration as text."""
    site = f"kgt-{topology.name}"
    t = f"--topology {topology_path}"
    commands = {
        "kgt_galera": f"{kgt} probe galera {t} --node $HOSTNAME$ -t 10",
        "kgt_haproxy": f"{kgt} probe haproxy {t} --proxy $HOSTNAME$ -t 10",
        "kgt_dns": f"{kgt} probe dns {t} --server $HOSTADDRESS$ -t 10",
        "kgt_dns_system": f"{kgt} probe dns {t} -t 10",
        "kgt_cluster": f"{kgt} probe cluster {t} -w $ARG1$ -c $ARG2$ -t 20",
        "kgt_keystone": f"{kgt} probe keystone {t} --issue-region $ARG1$ -w $ARG2$ -c $ARG3$ -t 20",
        "kgt_nrpe": "$USER1$/check_nrpe -H $HOSTADDRESS$ -t 20 -c $ARG1$",
        "kgt_host_alive": "$USER1$/check_ping -H $HOSTADDRESS$ -w 3000.0,80% -c 5000.0,100% -p 5",
        "kgt_site_alive": "$USER1$/check_dummy 0 'site-wide kgt checks run from the monitoring host'",
    }
    out = [
        f"# kgt probes for topology {topology.name}, written by `kgt probe nagios-config`.",
        "# Uses the sample objects of Nagios/Icinga 1 (templates generic-host and generic-service,",
        "# timeperiod 24x7, contact group admins) and the monitoring plugins in $USER1$. The",
        f"# monitoring host needs {kgt}, {topology_path} and read access to the secrets file it names.",
        "# Each proxy runs the vip probe through NRPE; add to its nrpe.cfg:",
    ]
    for host in topology.with_role("keepalived"):
        out.append(f"#   {host.name}: command[kgt_vip]={kgt} probe vip {t} --host {host.name} -t 10")
    out.append("")
    out += [_block("command", [("command_name", name), ("command_line", cmd)]) for name, cmd in commands.items()]
    if hosts:
        for name, alive in (("kgt-host", "kgt_host_alive"), ("kgt-site", "kgt_site_alive")):
            out.append(
                _block(
                    "host",
                    [
                        ("name", name),
                        ("use", "generic-host"),
                        ("check_command", alive),
                        ("check_period", "24x7"),
                        ("max_check_attempts", "5"),
                        ("contact_groups", "admins"),
                        ("register", "0"),
                    ],
                )
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
        out.append(
            _block(
                "host",
                [
                    ("use", "kgt-site"),
                    ("host_name", site),
                    ("alias", f"kgt site {topology.name} (checks run from the monitoring host)"),
                    ("address", "127.0.0.1"),
                ],
            )
        )

    def service(host: str, description: str, command: str) -> str:
        return _block(
            "service",
            [
                ("use", "generic-service"),
                ("host_name", host),
                ("service_description", description),
                ("check_command", command),
            ],
        )

    out += [service(h.name, "galera", "kgt_galera") for h in topology.galera_nodes]
    out += [service(h.name, "haproxy", "kgt_haproxy") for h in topology.with_role("haproxy")]
    out += [service(h.name, "vip", "kgt_nrpe!kgt_vip") for h in topology.with_role("keepalived")]
    dns_hosts = topology.with_role("dns")
    out += [service(h.name, "dns", "kgt_dns") for h in dns_hosts]
    if not dns_hosts and topology.vips:
        out.append(service(site, "dns", "kgt_dns_system"))
    # Missing voters: WARNING above 0, CRITICAL above a minority (losing Primary is CRITICAL anyway).
    out.append(service(site, "galera cluster", f"kgt_cluster!0!{max(1, (len(topology.voters) - 1) // 2)}"))
    if topology.with_role("keystone"):
        out += [
            service(site, f"keystone from {r.name}", f"kgt_keystone!{r.name}!1!5") for r in topology.regions if r.vips
        ]
    return "\n".join(out)


def main(*, topology: Path, kgt_path: str, topology_path: str | None, no_hosts: bool) -> int:
    """Print the definitions; a bad topology is one UNKNOWN-style line and exit 3."""
    import click

    from toolkit.probes import targets
    from toolkit.probes.runtime import failure_text

    try:
        model_ = targets.load(topology)
    except Exception as exc:  # the probe edge: one UNKNOWN line, never a traceback
        click.echo(line("kgt nagios-config", "UNKNOWN", failure_text(exc)))
        return 3
    click.echo(definitions(model_, kgt_path, topology_path or str(topology.resolve()), hosts=not no_hosts))
    return 0
