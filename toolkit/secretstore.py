"""The secrets file: which secrets a topology needs, generating, rotating and reading them.

Secrets live in a YAML mapping `name: value` in a 0600 file next to the topology (or
named with `--secrets`). Values never reach stdout, logs or diffs: `mask` replaces
them wherever rendered text is shown.
"""

from __future__ import annotations

import re
import secrets as random_source
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from toolkit.errors import SecretsError, TopologyError
from toolkit.files import write_atomic
from toolkit.topology.loader import read_yaml
from toolkit.topology.model import Topology


@dataclass(frozen=True)
class SecretSpec:
    """A secret a role needs: its name, what it is for, and which role requires it.

    `only_if`, when given, narrows "a host has the role" to the topologies that use it.
    """

    name: str
    role: str
    purpose: str
    only_if: Callable[[Topology], bool] | None = None


def _vrrp2(topology: Topology) -> bool:
    """Whether a proxy speaks VRRPv2 (PASS authentication; VRRPv3 has none)."""
    return any(h.settings.keepalived.vrrp_version == 2 for h in topology.with_role("keepalived"))


SPECS = (
    SecretSpec(
        "admin_password",
        "galera",
        "MariaDB administrator kgt_admin (checks, lab bootstrap)",
    ),
    SecretSpec("sst_password", "galera", "mariabackup SST user kgt_sst"),
    SecretSpec("health_password", "galera", "user kgt_health of the health endpoint and probes"),
    SecretSpec("verify_password", "galera", "user kgt_verify of `kgt check verify`"),
    SecretSpec("keystone_db_password", "keystone", "database user keystone"),
    SecretSpec("keystone_admin_password", "keystone", "Keystone bootstrap user admin"),
    SecretSpec("haproxy_stats_password", "haproxy", "HAProxy HTTP stats listener user kgt"),
    SecretSpec("keepalived_password", "keepalived", "VRRPv2 PASS authentication between proxies", _vrrp2),
    SecretSpec("etcd_root_password", "etcd", "etcd's root user: kgt publish and kgt rollout"),
    SecretSpec("agent_secret", "etcd", "each host's agent etcd password and file key are derived from it"),
)


# RFC 3986 unreserved characters: safe unquoted in SQL literals, URLs, my.cnf, haproxy.cfg.
SAFE_VALUE = re.compile(r"[A-Za-z0-9._~-]+")


def required(topology: Topology) -> list[SecretSpec]:
    """The secrets `topology` needs, in a stable order."""
    roles = {role for host in topology.hosts for role in host.roles}
    return [spec for spec in SPECS if spec.role in roles and (spec.only_if is None or spec.only_if(topology))]


def _generate(name: str) -> str:
    # keepalived's PASS authentication uses only the first 8 characters.
    return random_source.token_hex(4) if name == "keepalived_password" else random_source.token_urlsafe(24)


@dataclass(frozen=True)
class Secrets:
    """Secret values read from a file."""

    path: Path
    values: dict[str, str]

    def __getitem__(self, name: str) -> str:
        try:
            return self.values[name]
        except KeyError:
            raise SecretsError(f"{self.path}: missing secret '{name}' (run `kgt secrets init` to add it)") from None

    def mask(self, text: str) -> str:
        """`text` with every secret value replaced by `********`."""
        for value in sorted(self.values.values(), key=len, reverse=True):
            if value:
                text = text.replace(value, "********")
        return text


def read(path: Path) -> Secrets:
    """Read a secrets file; a missing or malformed file is a SecretsError."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SecretsError(f"{path}: secrets file not found (run `kgt secrets init TOPOLOGY --file {path}`)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SecretsError(f"{path}{line}: invalid YAML in secrets file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretsError(f"{path}: cannot read secrets file: {exc.__class__.__name__}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise SecretsError(f"{path}: a secrets file is a mapping of names to text values")
    for name, value in data.items():
        if value and not SAFE_VALUE.fullmatch(value):
            raise SecretsError(
                f"{path}{_line_of(path, name)}: secret '{name}': only letters, digits and - _ . ~ are allowed "
                f"(the value goes unquoted into SQL, URLs and config files)"
            )
    return Secrets(path, dict(data))


def _line_of(path: Path, name: str) -> str:
    """':N' for the line of top-level key `name` in the secrets file, or '' if it cannot be read."""
    try:
        line = read_yaml(path)[1].line((name,))
    except TopologyError:
        return ""
    return f":{line}" if line else ""


def for_topology(topology: Topology, path: Path | None = None) -> Secrets:
    """The secrets of `topology`, checked complete; created first when the topology says so."""
    path = path or topology.secrets_file
    if topology.secrets_create and (not path.exists() or _lacks(topology, path)):
        init(topology, path)  # a lab: a new file, or one a role added since needs more
    loaded = read(path)
    missing = [spec.name for spec in required(topology) if not loaded.values.get(spec.name)]
    if missing:
        raise SecretsError(
            f"{path}: missing secret{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(run `kgt secrets init` to add)"
        )
    return loaded


def _lacks(topology: Topology, path: Path) -> bool:
    values = read(path).values
    return any(not values.get(spec.name) for spec in required(topology))


def write(path: Path, values: dict[str, str]) -> None:
    """Write `values` atomically to a 0600 file (never a partial or world-readable file)."""
    text = "# kgt secrets: keep this file private (mode 0600); never commit it.\n"
    text += yaml.safe_dump(dict(sorted(values.items())), default_flow_style=False)
    write_atomic(path, text.encode("utf-8"), 0o600)


def init(topology: Topology, path: Path) -> list[str]:
    """Add a fresh value for every needed secret the file lacks; return the names added."""
    existing = read(path).values if path.exists() else {}
    added = [spec.name for spec in required(topology) if not existing.get(spec.name)]
    write(path, {**existing, **{name: _generate(name) for name in added}})
    return added


def rotate(path: Path, name: str) -> None:
    """Replace one secret's value."""
    current = read(path)
    if name not in current.values and name not in {s.name for s in SPECS}:
        raise SecretsError(f"{path}: unknown secret '{name}' (known: {', '.join(s.name for s in SPECS)})")
    write(path, {**current.values, name: _generate(name)})
