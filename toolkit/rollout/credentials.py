"""What each host's agent logs in to etcd with and decrypts its files with, derived from one site secret.

The secrets file holds one `agent_secret` for the site (and etcd's `etcd_root_password`,
which only `kgt publish` uses). Each host's etcd password and file key are derived from
it with HKDF-SHA256, salted with the site's name and labelled with the host's, so
`kgt render` writes every host's `/etc/kgt/agent.secret` again byte for byte, a host's
credentials say nothing about another's, and rotating `agent_secret` renews them all.

File contents are stored in etcd encrypted (Fernet: AES-128-CBC with an HMAC-SHA256) with
the host's key, so neither another host's credentials nor an etcd snapshot reveal a
secret; the manifests hold no secret at all.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from toolkit.errors import StoreError
from toolkit.rollout.keys import agent_user
from toolkit.secretstore import Secrets
from toolkit.topology.model import Topology


def _derive(secret: str, site: str, host: str, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=site.encode(), info=f"kgt-agent/{host}/{purpose}".encode())
    return hkdf.derive(secret.encode())


@dataclass(frozen=True)
class AgentCredentials:
    """One host's etcd user, password and file key (the last two out of every repr)."""

    user: str
    password: str = field(repr=False)
    file_key: bytes = field(repr=False)

    @classmethod
    def derive(cls, agent_secret: str, site: str, host: str, user: str) -> AgentCredentials:
        """The credentials of `host`, from the site's agent secret."""
        password = base64.urlsafe_b64encode(_derive(agent_secret, site, host, "etcd-password")).decode().rstrip("=")
        key = base64.urlsafe_b64encode(_derive(agent_secret, site, host, "file-key"))
        return cls(user, password, key)

    def seal(self, content: bytes) -> bytes:
        """`content` encrypted and authenticated for this host."""
        return Fernet(self.file_key).encrypt(content)

    def open(self, sealed: bytes, what: str) -> bytes:
        """The clear text of `sealed`; a StoreError when it was not sealed with this host's key or was altered."""
        try:
            return Fernet(self.file_key).decrypt(sealed)
        except InvalidToken:
            raise StoreError(f"{what}: not sealed with this host's key, or altered") from None


def for_host(topology: Topology, secrets: Secrets, host: str) -> AgentCredentials:
    """`host`'s agent credentials, from the site's `agent_secret`."""
    return AgentCredentials.derive(secrets["agent_secret"], topology.name, host, agent_user(host))
