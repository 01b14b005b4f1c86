"""Keys and certificates of the site CA and its hosts, made with `cryptography`.

Keys are EC P-256 (ECDSA with SHA-256): every TLS stack kgt renders for (MariaDB and
Galera through OpenSSL, HAProxy, Python's ssl for Keystone's clients) accepts them; a
handshake costs a fraction of an RSA 3072 one at the same strength (128-bit), which
matters on the WAN paths Galera and Keystone take. The CA is valid ten years, host
certificates `tls.days` (default 365), never past their CA. Nothing here writes a file
or prints a key: `store` does the writing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from toolkit.pki.names import Names

CA_DAYS = 3650
Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """A key and its certificate."""

    key: Key
    cert: x509.Certificate


def now() -> dt.datetime:
    """The current time, UTC, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_key() -> Key:
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, site: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, site), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def new_ca(site: str, *, start: dt.datetime | None = None, days: int = CA_DAYS) -> Issued:
    """A self-signed site CA; its CN carries a random tag, so successive CAs are told apart."""
    start = start or now()
    key = new_key()
    name = _name(f"{site} site CA {secrets.token_hex(4)}", site)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(
    ca: Issued, common_name: str, names: Names, site: str, *, days: int, start: dt.datetime | None = None
) -> Issued:
    """A host certificate for `names`, signed by `ca`, for servers and clients (Galera peers are both)."""
    start = start or now()
    key = new_key()
    end = min(start + dt.timedelta(days=days), ca.cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names.dns]
    sans += [x509.IPAddress(a) for a in names.ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, site))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )  # digitalSignature (ECDHE key exchange)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def cert_pem(cert: x509.Certificate) -> bytes:
    """A certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (the services read it at start-up; the file is 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
