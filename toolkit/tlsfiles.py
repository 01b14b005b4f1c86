"""Where each service finds its TLS files on a host, and the one cipher and version floor (stdlib only).

Every service that speaks TLS gets its own copy of the site CA bundle and of its host's
certificate and key, in a folder it owns, so that no service reads another's key and each
can be reloaded alone: MariaDB (client port, Galera replication and IST, SST through
stunnel or socat) in `/etc/mysql/tls`, garbd in `/etc/kgt/garbd-tls`, HAProxy (the
Keystone listener on the VIPs, and its HTTPS to the Keystone servers) in
`/etc/haproxy/tls` with certificate and key in one `server.pem` as HAProxy reads them,
Keystone's gunicorn (HTTPS to HAProxy) and its database client in `/etc/keystone/tls`,
an etcd member (client and peer ports) in `/etc/etcd/tls`.

The cipher list is the one floor every TLS speaker here is given: ECDHE key exchange
with AEAD ciphers only, which no protocol before TLS 1.2 offers, so it is a version
floor too where a service (Galera's `socket.ssl_cipher`) has no version option.
"""

from __future__ import annotations

from dataclasses import dataclass

CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
MIN_VERSION = "TLSv1.2"  # and TLS 1.3, whose suites are all AEAD
# CIPHERS as Go names them (etcd's cipher-suites; TLS 1.3's suites are not configurable there).
GO_CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
)


@dataclass(frozen=True)
class TlsDir:
    """One service's TLS folder on a host."""

    role: str  # the topology role whose service reads it
    service: str  # the service that reads the files (manifest `service`)
    path: str  # absolute folder on the host
    owner: str  # the user the service runs as: owner of the key
    reload: str  # what makes the service read new files
    combined: bool = False  # certificate and key in one `server.pem` (HAProxy)
    action: str = "restart"  # what the agent does to the service after new files (`RenderedFile.action`)

    @property
    def ca(self) -> str:
        """The site CA bundle: what the service trusts."""
        return f"{self.path}/ca.crt"

    @property
    def cert(self) -> str:
        """The host's certificate (the combined PEM for HAProxy)."""
        return f"{self.path}/server.pem" if self.combined else f"{self.path}/server.crt"

    @property
    def key(self) -> str:
        """The host's private key (inside `cert` when combined)."""
        return f"{self.path}/server.pem" if self.combined else f"{self.path}/server.key"


# Every host's agent verifies the etcd members with its own copy of the CA bundle (no key).
AGENT_CA = "/etc/kgt/tls/ca.crt"

BY_ROLE: dict[str, TlsDir] = {
    d.role: d
    for d in (
        TlsDir("galera", "mariadb", "/etc/mysql/tls", "mysql", "rolling restart: systemctl restart mariadb"),
        TlsDir("garbd", "garbd", "/etc/kgt/garbd-tls", "nobody", "systemctl restart garbd"),
        TlsDir("haproxy", "haproxy", "/etc/haproxy/tls", "root", "systemctl reload haproxy", True, "reload"),
        TlsDir("keystone", "keystone", "/etc/keystone/tls", "keystone", "restart the Keystone WSGI server"),
        TlsDir("etcd", "etcd", "/etc/etcd/tls", "etcd", "rolling restart: systemctl restart etcd"),
    )
}


def scheme(tls_on: bool) -> str:
    """`https` on a TLS site, else `http` (Keystone's endpoints and health URLs)."""
    return "https" if tls_on else "http"
