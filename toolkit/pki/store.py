"""kgt's own CA on disk: `kgt pki init` and `kgt pki rotate`, every file written atomically.

Layout of `tls.dir` (default `<topology file stem>.pki` beside the topology and its secrets):
`ca.key` and `ca.crt` (the CA that signs), `ca-bundle.crt` (what every client and
service trusts: the current CA and, during a CA rotation, the previous one) and
`certs/HOST.crt` + `certs/HOST.key`. Keys are 0600, the folders 0700; a key is written
before its certificate, so an interruption leaves a host without a certificate, which
the next `init` issues again, never a certificate without its key.

A CA rotation keeps both CAs trusted throughout: `rotate --ca` makes a new CA and puts
it in the bundle beside the old one (host certificates untouched: they still verify);
once the bundle is deployed everywhere, `rotate` re-issues the host certificates under
the new CA (old and new ones both verify against the bundle during that roll-out);
`rotate --retire` then drops the previous CA, and refuses while a host certificate
still depends on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from toolkit.errors import KgtError, PkiError, Problem
from toolkit.files import write_atomic
from toolkit.pki import authority, verify
from toolkit.pki.names import common_name, subject_alt_names
from toolkit.topology.document import TlsDoc
from toolkit.topology.model import Host, Tls, Topology


def with_tls(topology: Topology) -> Topology:
    """`topology` when it has `tls:`, else as if it said `tls: {}` (a PKI can be made before TLS is on)."""
    if topology.tls is not None:
        return topology
    return dataclasses.replace(topology, tls=Tls.from_document(TlsDoc.model_validate({}), topology.source))


@dataclass(frozen=True)
class Site:
    """kgt's CA folder for one topology."""

    topology: Topology
    tls: Tls
    dir: Path  # the CA folder
    ca_cert: Path  # the signing CA's certificate
    ca_key: Path  # and its key

    @classmethod
    def of(cls, topology: Topology) -> Site:
        """The managed PKI of `topology`; refused when the topology names the operator's own CA."""
        topology = with_tls(topology)
        tls = topology.tls
        assert tls is not None
        if tls.dir is None:
            raise KgtError(
                f"{topology.source}: tls.ca names your own CA ({tls.ca_file}): kgt issues no certificate for it; "
                "`kgt pki status` checks yours"
            )
        return cls(topology, tls, tls.dir, tls.dir / "ca.crt", tls.dir / "ca.key")

    def ca(self) -> authority.Issued | None:
        """The signing CA, None when there is none yet; PkiError when half of it is missing or wrong."""
        if not self.ca_key.exists() and not self.ca_cert.exists():
            return None
        try:
            key = verify.read_key(self.ca_key)
        except verify.Unreadable as exc:
            raise PkiError([Problem(str(self.ca_key), None, "CA", str(exc))]) from None
        try:
            cert = verify.read_certs(self.ca_cert)[0]
        except verify.Unreadable as exc:
            raise PkiError([Problem(str(self.ca_cert), None, "CA", f"CA certificate {exc}")]) from None
        if not verify.same_key(key, cert) or not isinstance(key, authority.Key):
            raise PkiError([Problem(str(self.ca_key), None, "CA", "key does not match the CA certificate")])
        return authority.Issued(key, cert)

    def bundle(self) -> list[x509.Certificate]:
        """The CAs clients trust now ([] when there is no bundle yet)."""
        try:
            return verify.read_certs(self.tls.ca_file)
        except verify.Unreadable as exc:
            if str(exc) == "missing":
                return []
            raise PkiError([Problem(str(self.tls.ca_file), None, "CA", f"CA bundle {exc}")]) from None

    def write_bundle(self, cas: list[x509.Certificate]) -> None:
        """Write the trust bundle: each CA once, in order."""
        seen, unique = set(), []
        for cert in cas:
            digest = cert.fingerprint(hashes.SHA256())
            if digest not in seen:
                seen.add(digest)
                unique.append(cert)
        write_atomic(self.tls.ca_file, b"".join(authority.cert_pem(c) for c in unique), 0o644)

    def write_ca(self, ca: authority.Issued) -> None:
        """Write the signing CA: key first, then certificate."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.ca_key, authority.key_pem(ca.key), 0o600)
        write_atomic(self.ca_cert, authority.cert_pem(ca.cert), 0o644)

    def issue(self, ca: authority.Issued, host: Host) -> None:
        """A new key and certificate for `host`, written key first."""
        names = subject_alt_names(self.topology, host)
        issued = authority.issue(ca, common_name(self.topology, host), names, self.topology.name, days=self.tls.days)
        self.tls.certs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(verify.key_file(self.tls, host.name), authority.key_pem(issued.key), 0o600)
        write_atomic(verify.cert_file(self.tls, host.name), authority.cert_pem(issued.cert), 0o644)

    def has_pair(self, host: Host) -> bool:
        """Whether both of `host`'s files exist (their content is `status`'s business)."""
        return verify.cert_file(self.tls, host.name).exists() and verify.key_file(self.tls, host.name).exists()


def init(topology: Topology) -> list[str]:
    """Create the CA and every host certificate that is missing; return what was done (nothing: [])."""
    site = Site.of(topology)
    done: list[str] = []
    ca = site.ca()
    if ca is None:
        ca = authority.new_ca(topology.name)
        site.write_ca(ca)
        done.append(f"created CA {verify.subject_cn(ca.cert)} in {site.dir}")
    bundle = site.bundle()
    if ca.cert not in bundle:
        site.write_bundle([ca.cert, *bundle])
        done.append(f"wrote {site.tls.ca_file}")
    issued = [h.name for h in topology.hosts if not site.has_pair(h)]
    for name in issued:
        site.issue(ca, topology.host(name))
    if issued:
        done.append(f"issued {len(issued)} host certificate{'s' if len(issued) > 1 else ''}: {', '.join(issued)}")
    return done


def rotate_hosts(topology: Topology, names: tuple[str, ...]) -> list[str]:
    """New keys and certificates for `names` (every host when empty), under the current CA."""
    site = Site.of(topology)
    ca = site.ca()
    if ca is None:
        raise KgtError(f"{site.dir}: no CA yet: run `kgt pki init {topology.source}` first")
    known = {h.name for h in topology.hosts}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KgtError(f"{topology.source}: no host {', '.join(unknown)} (hosts: {', '.join(sorted(known))})")
    hosts = [h for h in topology.hosts if not names or h.name in names]
    for host in hosts:
        site.issue(ca, host)
    return [
        f"re-issued {len(hosts)} host certificate{'s' if len(hosts) > 1 else ''} under CA "
        f"{verify.subject_cn(ca.cert)}: {', '.join(h.name for h in hosts)}"
    ]


def rotate_ca(topology: Topology) -> list[str]:
    """A new signing CA, trusted beside the previous ones still valid; host certificates untouched."""
    site = Site.of(topology)
    previous = [c for c in site.bundle() if c.not_valid_after_utc > authority.now()]
    ca = authority.new_ca(topology.name)
    site.write_bundle([ca.cert, *previous])  # trusted before anything is signed by it
    site.write_ca(ca)
    return [
        f"created CA {verify.subject_cn(ca.cert)}; {site.tls.ca_file} trusts it and {len(previous)} previous",
        f"next: deploy the bundle everywhere (kgt render), then `kgt pki rotate {topology.source}` re-issues "
        f"the host certificates under it, then `kgt pki rotate {topology.source} --retire` drops the previous CA",
    ]


def retire(topology: Topology) -> list[str]:
    """Trust only the current CA, once no host certificate depends on a previous one."""
    site = Site.of(topology)
    ca = site.ca()
    if ca is None:
        raise KgtError(f"{site.dir}: no CA yet: run `kgt pki init {topology.source}` first")
    still = []
    for host in topology.hosts:
        try:
            leaf, *rest = verify.read_certs(verify.cert_file(site.tls, host.name))
        except verify.Unreadable:
            continue
        if not verify.chains_to(leaf, rest, [ca.cert]):
            still.append(host.name)
    if still:
        raise KgtError(
            f"{site.tls.ca_file}: not retiring the previous CA: {', '.join(still)} still have certificates it "
            f"signed (run `kgt pki rotate {topology.source}` first)"
        )
    dropped = len([c for c in site.bundle() if c != ca.cert])
    if not dropped:
        return []
    site.write_bundle([ca.cert])
    return [f"{site.tls.ca_file}: dropped {dropped} previous CA{'s' if dropped > 1 else ''}"]


def prepare(topology: Topology) -> list[str]:
    """Before a render: make what `tls.create` asks for, then check every certificate (PkiError: nothing rendered).

    A no-op without TLS; returns what `init` did, for the caller to tell the operator.
    """
    if not topology.tls_on:
        return []
    assert topology.tls is not None
    done = init(topology) if topology.tls.create else []
    verify.check_certificates(topology)
    return done
