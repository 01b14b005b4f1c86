"""Where everything lives in etcd, under one prefix per site: `/kgt/<site>/`.

    /kgt/<site>/generation                     the last generation number any publish used
    /kgt/<site>/auth                           a fingerprint of the etcd users and grants last set up
    /kgt/<site>/hosts/<host>/manifest          that host's current generation (JSON, no secret)
    /kgt/<site>/hosts/<host>/blobs/<sha256>    a file's content, encrypted with the host's key
    /kgt/<site>/status/<host>/state            what the host's agent last did (JSON)
    /kgt/<site>/locks/<name>                   leased locks of coordinated restarts
    /kgt/<site>/halt/<service>                 a failed restart stops that service's rollout everywhere

A host's agent may read only its own `hosts/<host>/` (need-to-know: no host reads another's
secrets), read every status (whose turn it is; they hold no secret) and write only its own,
the locks and the halts; `kgt publish` is etcd's root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.store import Permission

ROOT = "/kgt"


@dataclass(frozen=True)
class Keys:
    """The key names of one site."""

    site: str

    @property
    def prefix(self) -> str:
        """Every key of the site."""
        return f"{ROOT}/{self.site}/"

    @property
    def auth(self) -> str:
        """The fingerprint of the users and grants `kgt publish` set up last (no secret)."""
        return f"{self.prefix}auth"

    @property
    def generation(self) -> str:
        """The last generation number any publish used."""
        return f"{self.prefix}generation"

    def host(self, host: str) -> str:
        """The prefix of what is published for `host`."""
        return f"{self.prefix}hosts/{host}/"

    def manifest(self, host: str) -> str:
        """`host`'s current generation."""
        return f"{self.host(host)}manifest"

    def blobs(self, host: str) -> str:
        """The prefix of `host`'s file contents."""
        return f"{self.host(host)}blobs/"

    def blob(self, host: str, digest: str) -> str:
        """One file content of `host`, by the SHA-256 of its clear text."""
        return f"{self.blobs(host)}{digest}"

    @property
    def statuses(self) -> str:
        """The prefix of every agent's status."""
        return f"{self.prefix}status/"

    def status(self, host: str) -> str:
        """What `host`'s agent last did."""
        return f"{self.statuses}{host}/state"

    @property
    def locks(self) -> str:
        """The prefix of the coordinated restarts' locks."""
        return f"{self.prefix}locks/"

    def lock(self, name: str) -> str:
        """One lock (`galera`, `keystone-r1`, `etcd`)."""
        return f"{self.locks}{name}"

    @property
    def halts(self) -> str:
        """The prefix of the halted services."""
        return f"{self.prefix}halt/"

    def halt(self, service: str) -> str:
        """Set when a restart of `service` did not come back healthy: no agent restarts it until cleared."""
        return f"{self.halts}{service}"

    def agent_user(self, host: str) -> str:
        """The etcd user of `host`'s agent."""
        return agent_user(host)

    def agent_grants(self, host: str) -> list[tuple[str, Permission]]:
        """What `host`'s agent may do: read its prefix and the statuses, write its own, take locks, set halts."""
        return [
            (self.host(host), "read"),
            (self.statuses, "read"),  # whose turn it is in a rolling restart
            (f"{self.statuses}{host}/", "readwrite"),
            (self.locks, "readwrite"),
            (self.halts, "readwrite"),
        ]


def agent_user(host: str) -> str:
    """The etcd user of `host`'s agent."""
    return f"kgt-agent-{host}"
