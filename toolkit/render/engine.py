"""Render every per-host config of a topology in memory, from the component templates.

Templates live in the top-level component folders (`galera/`, `haproxy/`, …), named
after the file they produce, and ship inside the wheel as `toolkit/templates/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from toolkit import tlsfiles
from toolkit.accounts import accounts
from toolkit.errors import PkiError, Problem
from toolkit.pki import verify
from toolkit.render import context as ctx
from toolkit.render import firewall, zone
from toolkit.secretstore import Secrets
from toolkit.topology import etcd
from toolkit.topology.evs import evs_timeouts
from toolkit.topology.model import Host, Topology

COMPONENTS = ("galera", "haproxy", "keepalived", "keystone", "memcached", "dns", "nftables", "etcd", "agent")


@dataclass(frozen=True)
class RenderedFile:
    """One output file: where it goes, what it holds, and who reads and reloads it."""

    path: str  # relative to the output directory: `<host>/etc/...`, `dns/...`, `sql/...`
    host: str | None
    content: str
    service: str
    reload: str
    mode: int = 0o644
    owner: str = "root"
    action: str = "restart"  # what the agent does to `service` after a change: restart | reload | apply | none
    check: str | None = None  # a command that validates the file before it is swapped in (`{file}`: the file)

    @property
    def target(self) -> str:
        """Where a host's file goes on that host (`/etc/...`)."""
        return "/" + self.path.split("/", 1)[1]


def template_dirs() -> list[Path]:
    """Where templates are found: inside the installed package, else the source tree."""
    package = Path(__file__).resolve().parent.parent
    shipped = package / "templates"
    if shipped.is_dir():
        return [shipped]
    return [package.parent]


def environment() -> jinja2.Environment:
    """A strict Jinja environment: an undefined name is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs()]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.globals["time"] = ctx.haproxy_time
    env.filters["num"] = ctx.number
    return env


@dataclass(frozen=True)
class _Spec:
    role: str | None  # None: every host
    template: str
    target: str
    service: str
    reload: str
    mode: int = 0o644
    owner: str = "root"
    action: str = "restart"
    check: str | None = None
    extra: Callable[[Topology, Host], dict[str, Any]] | None = None
    when: Callable[[Topology], bool] | None = None  # rendered only where the topology asks

    def applies(self, topology: Topology, host: Host) -> bool:
        """Whether `host` gets this file."""
        if self.role is not None and not host.has(self.role):
            return False
        return self.when is None or self.when(topology)


def _galera(topology: Topology, host: Host) -> dict[str, Any]:
    return {
        "g": host.settings.galera,
        "gcomm_url": ctx.gcomm_url(topology),
        "slave_threads": ctx.slave_threads(host),
        "provider_options": [f"{k}={v}" for k, v in ctx.provider_options(topology, host)],
    }


def _garbd(topology: Topology, host: Host) -> dict[str, Any]:
    peers = [h.gcomm_address for h in topology.voters if h.name != host.name]
    evs = evs_timeouts(topology, host)
    options = [f"evs.{k}={ctx.iso_period(v)}" for k, v in evs.items()]
    return {
        "peers": peers,
        "evs_options": options + [f"{k}={v}" for k, v in ctx.socket_ssl(topology, "garbd")],
    }


def _haproxy(topology: Topology, host: Host) -> dict[str, Any]:
    region = topology.region(host.region)
    return {
        "h": host.settings.haproxy,
        "listen": ctx.listen_addresses(topology, host),
        "galera": ctx.write_backends(topology, region),
        "galera_read": ctx.balanced_backends(topology, region, "galera"),
        "keystone": ctx.balanced_backends(topology, region, "keystone"),
        "detection": ctx.haproxy_time(host.settings.haproxy.detection_bound),
        "fqdn": lambda name: zone.fqdn(topology, name),
    }


def _keepalived(topology: Topology, host: Host) -> dict[str, Any]:
    instances = ctx.vrrp_instances(topology, host)
    return {
        "k": host.settings.keepalived,
        "instances": instances,
        "owned": [i.vip.name for i in instances if i.state == "MASTER"],
    }


def _keystone(topology: Topology, host: Host) -> dict[str, Any]:
    region = topology.region(host.region)
    return {
        "ks": host.settings.keystone,
        "database_url": ctx.database_url(topology, region),
        "memcache": ctx.memcache_servers(region),
    }


def _memcached(topology: Topology, host: Host) -> dict[str, Any]:
    m = host.settings.memcached
    return {"m": m, "threads": m.threads or host.settings.cores}


def _etcd(topology: Topology, host: Host) -> dict[str, Any]:
    members = etcd.members(topology)
    scheme = tlsfiles.scheme(topology.tls_on)
    cluster = ",".join(f"{m.name}={scheme}://{m.address}:{m.settings.etcd.peer_port}" for m in members)
    return {
        "e": host.settings.etcd,
        "members": members,
        "majority": etcd.majority(len(members)),
        "scheme": scheme,
        "initial_cluster": cluster,
        "timings": etcd.timings(topology),
        "worst_rtt_ms": round(etcd.worst_member_rtt(topology) * 1000),
        "cipher_suites": tlsfiles.GO_CIPHER_SUITES,
    }


def _nftables(topology: Topology, host: Host) -> dict[str, Any]:
    return {
        "icmp": firewall.nft_set(firewall.ICMP_TYPES),
        "icmpv6": firewall.nft_set(firewall.ICMPV6_TYPES),
        "rules": [firewall.rule(f) for f in firewall.inbound_flows(topology, host)] + firewall.closing_rules(host),
    }


CERT_CHECK = "openssl x509 -noout -in {file}"
KEY_CHECK = "openssl pkey -noout -in {file}"
# {python}: the agent's own interpreter (it has PyYAML), so the check needs nothing else on the host.
INI_CHECK = (
    "{python} -c 'import configparser, sys; configparser.ConfigParser(strict=False, interpolation=None)"
    ".read_file(open(sys.argv[1]))' {file}"
)
YAML_CHECK = "{python} -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' {file}"


SPECS = (
    _Spec(
        "galera",
        "galera/60-galera.cnf.j2",
        "etc/mysql/mariadb.conf.d/60-galera.cnf",
        "mariadb",
        "rolling restart: systemctl restart mariadb (one node at a time)",
        extra=_galera,
        check="mariadbd --defaults-file={file} --help --verbose",
    ),
    _Spec(
        "galera",
        "galera/61-galera-sst.cnf.j2",
        "etc/mysql/mariadb.conf.d/61-galera-sst.cnf",
        "mariadb",
        "read at the next SST; no reload",
        0o600,
        "mysql",
        action="none",
        check="my_print_defaults --defaults-file={file} sst",
    ),
    _Spec(
        "galera",
        "galera/health.cnf.j2",
        "etc/kgt/health.cnf",
        "kgt-health",
        "systemctl restart kgt-health",
        0o600,
        check="my_print_defaults --defaults-file={file} client",
    ),
    _Spec(
        "galera",
        "galera/kgt-health.service.j2",
        "etc/systemd/system/kgt-health.service",
        "kgt-health",
        "systemctl daemon-reload && systemctl restart kgt-health",
        extra=_galera,
    ),
    _Spec(
        "garbd",
        "galera/garb.j2",
        "etc/default/garb",
        "garbd",
        "systemctl restart garbd",
        extra=_garbd,
    ),
    _Spec(
        "haproxy",
        "haproxy/haproxy.cfg.j2",
        "etc/haproxy/haproxy.cfg",
        "haproxy",
        "systemctl reload haproxy",
        0o600,
        extra=_haproxy,
        action="reload",
        check="haproxy -c -f {file}",
    ),
    _Spec(
        "haproxy",
        "haproxy/60-kgt-haproxy.conf.j2",
        "etc/sysctl.d/60-kgt-haproxy.conf",
        "sysctl",
        "sysctl --system",
        action="apply",
    ),
    _Spec(
        "keepalived",
        "keepalived/keepalived.conf.j2",
        "etc/keepalived/keepalived.conf",
        "keepalived",
        "systemctl reload keepalived",
        0o600,
        extra=_keepalived,
        action="reload",
        check="keepalived -t -f {file}",
    ),
    _Spec(
        "keystone",
        "keystone/keystone.conf.j2",
        "etc/keystone/keystone.conf",
        "keystone",
        "restart the Keystone WSGI server",
        0o600,
        "keystone",
        extra=_keystone,
        check=INI_CHECK,
    ),
    _Spec(
        "memcached",
        "memcached/memcached.conf.j2",
        "etc/memcached.conf",
        "memcached",
        "systemctl restart memcached",
        extra=_memcached,
    ),
    _Spec(
        "dns",
        "dns/named.conf.options.j2",
        "etc/bind/named.conf.options",
        "named",
        "rndc reconfig",
        action="reload",
        check="named-checkconf {file}",
    ),
    _Spec(
        "dns",
        "dns/named.conf.local.j2",
        "etc/bind/named.conf.local",
        "named",
        "rndc reconfig",
        action="reload",
    ),
    _Spec(
        "etcd",
        "etcd/etcd.conf.yml.j2",
        "etc/etcd/kgt.conf.yml",
        "etcd",
        "rolling restart: systemctl restart etcd (one member at a time)",
        extra=_etcd,
        check=YAML_CHECK,
    ),
    _Spec(
        "etcd",
        "etcd/etcd.default.j2",
        "etc/default/etcd",
        "etcd",
        "rolling restart: systemctl restart etcd (one member at a time)",
    ),
    _Spec(
        None,
        "nftables/kgt.nft.j2",
        firewall.RULESET,
        "nftables",
        f"nft -f /{firewall.RULESET} (replaces table inet kgt in one transaction)",
        action="apply",
        check="nft -c -f {file}",
        extra=_nftables,
        when=lambda t: t.firewall.enabled,
    ),
    _Spec(
        None,
        "nftables/nftables.conf.j2",
        "etc/nftables.conf",
        "nftables",
        "nft -f /etc/nftables.conf (flushes the whole ruleset first)",
        0o755,
        action="apply",
        check="nft -c -f {file}",
        when=lambda t: t.firewall.enabled and t.firewall.mode == "complete",
    ),
)


def _read(path: Path, host: Host, what: str) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not PEM text"
        raise PkiError([Problem(str(path), None, f"host {host.name}", f"{what} cannot be read: {reason}")]) from None


def tls_files(topology: Topology, host: Host) -> list[RenderedFile]:
    """Each TLS service's own copy of the CA bundle and of `host`'s certificate and key (none without TLS)."""
    tls = topology.tls
    if tls is None or not tls.enabled:
        return []
    ca = _read(tls.ca_file, host, "CA bundle")
    cert = _read(verify.cert_file(tls, host.name), host, "certificate")
    key = _read(verify.key_file(tls, host.name), host, "key")
    files = []
    for role, d in tlsfiles.BY_ROLE.items():
        if not host.has(role):
            continue
        pairs = [(d.cert, cert + key)] if d.combined else [(d.cert, cert), (d.key, key)]
        files.append(
            RenderedFile(f"{host.name}{d.ca}", host.name, ca, d.service, d.reload, 0o644, d.owner, d.action, CERT_CHECK)
        )
        for target, content in pairs:
            mode, check = (0o600, KEY_CHECK) if target == d.key else (0o644, CERT_CHECK)
            files.append(
                RenderedFile(
                    f"{host.name}{target}", host.name, content, d.service, d.reload, mode, d.owner, d.action, check
                )
            )
    return files


def render(topology: Topology, secrets: Secrets) -> list[RenderedFile]:
    """Every file of the topology, sorted by path; nothing is written."""
    env = environment()
    tls = tlsfiles.BY_ROLE if topology.tls_on else None
    common = {"topology": topology, "secrets": _SecretView(secrets), "tls": tls, "ciphers": tlsfiles.CIPHERS}
    files: list[RenderedFile] = []
    zone_text = zone.build(topology)
    source = topology.source.read_text(encoding="utf-8")
    for host in topology.hosts:
        files += tls_files(topology, host)
        files += agent_files(topology, host, secrets, env)
        files.append(
            RenderedFile(f"{host.name}{TOPOLOGY_FILE}", host.name, source, "kgt", "read when used", action="none")
        )
        base = {**common, "host": host, "region": topology.region(host.region)}
        for spec in SPECS:
            if not spec.applies(topology, host):
                continue
            values = {**base, **(spec.extra(topology, host) if spec.extra else {})}
            content = env.get_template(spec.template).render(values)
            files.append(
                RenderedFile(
                    f"{host.name}/{spec.target}",
                    host.name,
                    content,
                    spec.service,
                    spec.reload,
                    spec.mode,
                    spec.owner,
                    spec.action,
                    spec.check,
                )
            )
        if host.has("dns"):
            files.append(
                RenderedFile(
                    f"{host.name}/etc/bind/kgt/{topology.domain}.zone",
                    host.name,
                    zone_text,
                    "named",
                    f"rndc reload {topology.domain}",
                    action="reload",
                    check=f"named-checkzone -q {topology.domain} {{file}}",
                )
            )
    files.append(
        RenderedFile(
            f"dns/{topology.domain}.zone",
            None,
            zone_text,
            "dns",
            "copy to every authoritative server, then rndc reload",
        )
    )
    has_keystone = bool(topology.with_role("keystone"))
    statements = [line for a in accounts(topology) for line in a.statements(secrets[a.secret])]
    sql = env.get_template("galera/bootstrap.sql.j2").render(
        {**common, "keystone": has_keystone, "statements": statements}
    )
    files.append(
        RenderedFile(
            "sql/bootstrap.sql",
            None,
            sql,
            "mariadb",
            "run once on the bootstrap node: mariadb < bootstrap.sql",
            0o600,
        )
    )
    return sorted(files, key=lambda f: f.path)


AGENT_CA = tlsfiles.AGENT_CA
AGENT_FILES = (  # template, target, mode: every host's agent, where the site has etcd members
    ("agent/agent.yaml.j2", "etc/kgt/agent.yaml", 0o644),
    ("agent/agent.secret.j2", "etc/kgt/agent.secret", 0o600),
    ("agent/kgt-agent.service.j2", "etc/systemd/system/kgt-agent.service", 0o644),
)


def agent_files(topology: Topology, host: Host, secrets: Secrets, env: jinja2.Environment) -> list[RenderedFile]:
    """`host`'s agent start-up files (never published: they let the agent read etcd); none without etcd."""
    if not etcd.members(topology):
        return []
    from toolkit.rollout.credentials import for_host  # only a site with etcd needs it

    values = {
        "topology": topology,
        "host": host,
        "endpoints": etcd.client_urls(topology),
        "ca": AGENT_CA if topology.tls_on else None,
        "services": "systemd",
        "credentials": for_host(topology, secrets, host.name),
    }
    out = []
    for template, target, mode in AGENT_FILES:
        content = env.get_template(template).render(values)
        out.append(
            RenderedFile(f"{host.name}/{target}", host.name, content, AGENT_SERVICE, AGENT_RELOAD, mode, action="none")
        )
    if topology.tls_on:
        ca = _read(topology.tls.ca_file, host, "CA bundle") if topology.tls else ""
        out.append(RenderedFile(f"{host.name}{AGENT_CA}", host.name, ca, AGENT_SERVICE, AGENT_RELOAD, action="none"))
    return out


# The site's topology on every host: what probes run on the host (NRPE-style) and the agent's
# coordination read; it holds no secret (the topology never does).
TOPOLOGY_FILE = "/etc/kgt/topology.yaml"
AGENT_SERVICE = "kgt-agent"
AGENT_RELOAD = "install once (kgt publish does not deliver the agent's own files): systemctl restart kgt-agent"


class _SecretView:
    """Lets templates write `secrets.name`; a missing secret raises SecretsError."""

    def __init__(self, secrets: Secrets) -> None:
        self._secrets = secrets

    def __getattr__(self, name: str) -> str:
        return self._secrets[name]
