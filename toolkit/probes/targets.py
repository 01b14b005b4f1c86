"""What a probe checks and with which credentials: the topology, the secrets, plain args.

Imported only by probes that were given a topology (loading it costs pydantic), so a
probe run with plain host arguments stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import ProbeUnknown

if TYPE_CHECKING:
    from toolkit.topology.model import Host, Topology


def load(path: Path) -> Topology:
    """The validated topology (a TopologyError becomes UNKNOWN at the probe edge)."""
    from toolkit.topology import load as load_topology

    return load_topology(path)


def host(topology: Topology, name: str, role: str | None = None) -> Host:
    """The host `name`, holding `role` if given; UNKNOWN otherwise."""
    try:
        found = topology.host(name)
    except KeyError:
        known = ", ".join(h.name for h in (topology.with_role(role) if role else topology.hosts))
        raise ProbeUnknown(f"no host {name!r} in {topology.source} (known: {known})") from None
    if role and not found.has(role):
        raise ProbeUnknown(f"host {name!r} has no {role} role in {topology.source}")
    return found


def secret(topology: Topology | None, secrets_path: Path | None, name: str) -> str:
    """One secret from `--secrets` or the topology's secrets file; never created here."""
    from toolkit import secretstore

    path = secrets_path or (topology.secrets_file if topology else None)
    if path is None:
        raise ProbeUnknown(f"no password: give --password-file, or a topology/--secrets for {name}")
    return secretstore.read(path)[name]


def password(password_file: Path | None, topology: Topology | None, secrets_path: Path | None, name: str) -> str:
    """The password from `--password-file` (first line) or else the secret `name`."""
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProbeUnknown(f"{password_file}: cannot read password file: {exc.strerror}") from None
        lines = text.splitlines()
        return lines[0].strip() if lines else ""
    return secret(topology, secrets_path, name)
