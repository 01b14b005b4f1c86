"""Check every host's certificate and key against the topology, before anything is rendered.

For each host: both files present, the certificate chains to the site CA (`tls.ca_file`,
a bundle of one or more CAs), its subject and SANs carry the names `names` computes,
it is valid now, and the key is the certificate's. Each finding is one `Problem`
naming the file, the host and what is wrong; `check_certificates` raises them all at
once as PkiError (exit 1). Key material never reaches a message.
"""

from __future__ import annotations

import datetime as dt
import stat
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from toolkit.errors import PkiError, Problem
from toolkit.pki import authority
from toolkit.pki.names import Names, common_name, subject_alt_names
from toolkit.topology.model import Host, Tls, Topology

MAX_CHAIN = 4  # leaf, up to two intermediates, a root


class Unreadable(Exception):
    """A PEM file kgt cannot use; the message says why (never its content)."""


def cert_file(tls: Tls, host: str) -> Path:
    """Where `host`'s certificate lives."""
    return tls.certs_dir / f"{host}.crt"


def key_file(tls: Tls, host: str) -> Path:
    """Where `host`'s private key lives."""
    return tls.certs_dir / f"{host}.key"


def read_certs(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file (a leaf and its intermediates, or a CA bundle)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Unreadable("missing") from None
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc.__class__.__name__}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise Unreadable("not a PEM certificate") from None
    return certs


def read_key(path: Path) -> PrivateKeyTypes:
    """The private key of a PEM file; one readable by group or others is refused."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise Unreadable("key missing") from None
    except OSError as exc:
        raise Unreadable(f"cannot read the key: {exc.strerror or exc.__class__.__name__}") from None
    if mode & 0o077:
        raise Unreadable(f"key is readable by group or others (mode {stat.S_IMODE(mode):04o}): chmod 600")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise Unreadable("key is encrypted (the services need it unencrypted, mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise Unreadable("not a PEM private key") from None


def cert_names(cert: x509.Certificate) -> Names:
    """The DNS names and IPv4 addresses of a certificate's SAN extension."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return Names((), ())
    ips = tuple(a for a in sans.get_values_for_type(x509.IPAddress) if isinstance(a, IPv4Address))
    return Names(tuple(sans.get_values_for_type(x509.DNSName)), ips)


def subject_cn(cert: x509.Certificate) -> str:
    """The subject's common name, or '' when it has none."""
    found = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""


def chains_to(leaf: x509.Certificate, intermediates: list[x509.Certificate], roots: list[x509.Certificate]) -> bool:
    """Whether `leaf` is signed by one of `roots`, directly or through `intermediates`."""
    current = leaf
    for _ in range(MAX_CHAIN):
        for root in roots:
            if _signed_by(current, root):
                return True
        parent = next((c for c in intermediates if c is not current and _signed_by(current, c)), None)
        if parent is None:
            return False
        current = parent
    return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def same_key(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Whether `key` is the private half of `cert`'s public key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def date(moment: dt.datetime) -> str:
    """A validity bound as people read it: `2026-01-31 12:00 UTC`."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Report:
    """What was found about one certificate (a host's, or a CA of the bundle): its facts and problems.

    `problems` are (file, what is wrong); a report without problems is a good certificate.
    """

    host: str  # a host name, or "CA"
    file: Path
    subject: str = ""
    not_after: dt.datetime | None = None
    names_ok: bool | None = None
    subject_ok: bool | None = None
    problems: tuple[tuple[Path, str], ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def days_left(self, at: dt.datetime) -> int | None:
        """Whole days until it expires (negative once expired), or None when unknown."""
        return None if self.not_after is None else (self.not_after - at).days

    def lines(self) -> list[Problem]:
        """Each problem as one line: `FILE: host H: what is wrong`."""
        where = "CA" if self.host == "CA" else f"host {self.host}"
        return [Problem(str(path), None, where, what) for path, what in self.problems]


def validity(cert: x509.Certificate, at: dt.datetime) -> str | None:
    """What is wrong with the certificate's validity period at `at`, or None."""
    if cert.not_valid_after_utc <= at:
        return f"certificate expired on {date(cert.not_valid_after_utc)}"
    if cert.not_valid_before_utc > at:
        return f"certificate not valid before {date(cert.not_valid_before_utc)}"
    return None


def trusted(tls: Tls, at: dt.datetime) -> tuple[list[x509.Certificate], list[Report]]:
    """The CAs of the bundle, and a report on each (or on the file, when it cannot be read)."""
    try:
        roots = read_certs(tls.ca_file)
    except Unreadable as exc:
        return [], [Report("CA", tls.ca_file, problems=((tls.ca_file, f"CA {exc}"),))]
    reports = []
    for cert in roots:
        wrong = [w for w in (validity(cert, at),) if w]
        if not _is_ca(cert):
            wrong.append(f"{subject_cn(cert) or 'a certificate'} is not a CA (no basicConstraints CA:TRUE)")
        reports.append(
            Report(
                "CA",
                tls.ca_file,
                subject_cn(cert),
                cert.not_valid_after_utc,
                problems=tuple((tls.ca_file, w) for w in wrong),
            )
        )
    return roots, reports


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def inspect(topology: Topology, host: Host, roots: list[x509.Certificate], at: dt.datetime) -> Report:
    """Everything about `host`'s certificate and key (see the module docstring)."""
    assert topology.tls is not None
    crt, key = cert_file(topology.tls, host.name), key_file(topology.tls, host.name)
    try:
        leaf, *intermediates = read_certs(crt)
    except Unreadable as exc:
        what = f"certificate missing (run `kgt pki init {topology.source}`)" if str(exc) == "missing" else str(exc)
        return Report(host.name, crt, problems=((crt, what),))
    problems: list[tuple[Path, str]] = []
    if roots and not chains_to(leaf, intermediates, roots):
        problems.append((crt, f"not signed by the site CA ({topology.tls.ca_file})"))
    expected, present = subject_alt_names(topology, host), cert_names(leaf)
    missing = expected.missing_from(present)
    cn, want = subject_cn(leaf), common_name(topology, host)
    subject_ok = cn in (want, host.name)
    if missing and not subject_ok:
        problems.append(
            (crt, f"certificate is for {cn or 'no name'!r}, not {host.name}: SANs lack {', '.join(missing)}")
        )
    elif missing:
        fix = f"`kgt pki rotate {topology.source} --host {host.name}` if the topology changed"
        problems.append((crt, f"SANs lack {', '.join(missing)} ({fix})"))
    elif not subject_ok:
        problems.append((crt, f"subject CN is {cn or 'empty'!r}, not {want!r}"))
    wrong = validity(leaf, at)
    if wrong:
        problems.append((crt, wrong))
    problems += _key_problems(key, leaf)
    return Report(host.name, crt, cn, leaf.not_valid_after_utc, not missing, subject_ok, tuple(problems))


def _key_problems(path: Path, cert: x509.Certificate) -> list[tuple[Path, str]]:
    try:
        key = read_key(path)
    except Unreadable as exc:
        return [(path, str(exc))]
    return [] if same_key(key, cert) else [(path, "key does not match the certificate")]


def reports(topology: Topology, at: dt.datetime | None = None) -> tuple[list[Report], list[Report]]:
    """(the CA bundle's reports, one report per host in file order)."""
    assert topology.tls is not None, "reports() needs a topology with a tls: section"
    at = at or authority.now()
    roots, cas = trusted(topology.tls, at)
    return cas, [inspect(topology, host, roots, at) for host in topology.hosts]


def problems(topology: Topology, at: dt.datetime | None = None) -> list[Problem]:
    """Every problem of the site's CA, certificates and keys, as lines."""
    cas, hosts = reports(topology, at)
    return [line for report in (*cas, *hosts) for line in report.lines()]


def check_certificates(topology: Topology, at: dt.datetime | None = None) -> None:
    """Raise PkiError with every problem when a host's certificate or key is not right (a no-op without `tls:`)."""
    if topology.tls is None:
        return
    found = problems(topology, at)
    if found:
        raise PkiError(found)
