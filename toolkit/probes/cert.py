"""`kgt probe cert`: the certificate a service really presents chains to the site CA, names the target, lasts.

Connects to `-H/-P` (or a topology's `--node` / `--vip`), does a TLS handshake and
judges the server's certificate. MariaDB speaks the MySQL protocol before TLS: with
`--protocol mysql` (the default on port 3306) the probe reads the server's greeting
and answers with the protocol's SSLRequest packet, the way every MySQL client starts
TLS, and needs no account. The chain is verified by OpenSSL against the CA bundle
(`--ca`, default the topology's `tls` bundle), intermediates sent by the server
included; names and expiry are read from the certificate with `cryptography`.

States
- CRITICAL: not signed by the CA; a name the clients use missing from its SANs;
  expired or not yet valid; days left outside -c; the server unreachable, silent,
  not offering TLS, or failing the handshake (clients cannot connect securely).
- WARNING: days left outside -w.
- UNKNOWN: bad arguments, an unreadable CA file, no result within -t.

Expected names: `--name` (repeatable), else with `--node H` every SAN the topology
computes for H (`toolkit.pki.names`), with `--vip V` the VIP's address and its
region's Keystone name (`db.<region>` with `--protocol mysql`). `-w/-c` are Nagios
ranges on the days left (default `-w 30: -c 7:`, i.e. WARNING under 30 days).
Perfdata: `days_left` (days, no unit: Nagios has none for days).
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nagiosplugin

from toolkit.errors import ProbeUnknown, TargetUnreachable
from toolkit.probes import model
from toolkit.probes.model import Critical, Ok
from toolkit.probes.runtime import Deadline, ProbeArgs, execute, reason

if TYPE_CHECKING:
    from cryptography import x509

    from toolkit.pki.names import Names
    from toolkit.topology.model import Topology

NAME = "kgt cert"
CLIENT_PROTOCOL_41, CLIENT_SSL, CLIENT_SECURE_CONNECTION = 0x200, 0x800, 0x8000
EXPIRY_CODES = (9, 10)  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED: judged as days


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise TargetUnreachable("closed the connection before TLS")
        data += chunk
    return data


def mysql_ssl_request(sock: socket.socket) -> None:
    """Read the MySQL greeting and send an SSLRequest; the socket is then ready for the TLS handshake."""
    header = _read_exactly(sock, 4)
    greeting = _read_exactly(sock, int.from_bytes(header[:3], "little"))
    if greeting[:1] == b"\xff":  # an error packet: code, then a message
        code = struct.unpack("<H", greeting[1:3])[0]
        message = greeting[3:]
        text = (message[6:] if message[:1] == b"#" else message).decode("utf-8", "replace")
        raise TargetUnreachable(f"refused the connection: {text} ({code})")
    if greeting[:1] != b"\x0a":
        raise TargetUnreachable("does not speak the MySQL protocol (no protocol 10 greeting)")
    end = greeting.index(b"\0", 1)
    caps = struct.unpack("<H", greeting[end + 1 + 4 + 8 + 1 : end + 1 + 4 + 8 + 3])[0]
    if not caps & CLIENT_SSL:
        raise TargetUnreachable("offers no TLS (the MySQL greeting lacks CLIENT_SSL)")
    flags = CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION
    body = struct.pack("<IIB23x", flags, 1 << 24, 45)  # max packet 16 MiB, utf8mb4
    sock.sendall(struct.pack("<I", len(body))[:3] + b"\x01" + body)


@dataclass(frozen=True)
class Presented:
    """The server's certificate (DER) and what OpenSSL said about its chain (None: verified)."""

    der: bytes
    chain_error: str | None
    chain_code: int = 0


def handshake(address: str, port: int, protocol: str, context: ssl.SSLContext, budget: float) -> bytes:
    """Connect, start TLS (after the MySQL SSLRequest for `mysql`) and return the server's certificate."""
    with socket.create_connection((address, port), timeout=budget) as raw:
        if protocol == "mysql":
            mysql_ssl_request(raw)
        server_hostname = None if _is_address(address) else address
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise TargetUnreachable("presented no certificate")
    return der


def _is_address(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def contexts(ca_file: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(verifying against `ca_file`, accepting anything): the second reads a certificate the first refused."""
    verifying = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    verifying.check_hostname = False  # names are judged against the topology's, not the dialled address
    try:
        verifying.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ProbeUnknown(f"{ca_file}: cannot read the CA bundle: {getattr(exc, 'strerror', None) or exc}") from None
    anything = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    return verifying, anything


def fetch(address: str, port: int, protocol: str, ca_file: Path, deadline: Deadline) -> Presented:
    """The presented certificate and the verdict on its chain; TargetUnreachable when there is none to judge."""
    verifying, anything = contexts(ca_file)
    where = f"{address}:{port}"
    try:
        try:
            return Presented(handshake(address, port, protocol, verifying, deadline.budget()), None)
        except ssl.SSLCertVerificationError as exc:
            der = handshake(address, port, protocol, anything, deadline.budget())
            return Presented(der, str(exc.verify_message), int(exc.verify_code))
    except TargetUnreachable as exc:
        raise TargetUnreachable(f"{where} {exc}") from None
    except TimeoutError:
        raise TargetUnreachable(f"{where} did not answer within the time budget") from None
    except ssl.SSLError as exc:
        raise TargetUnreachable(f"{where} TLS handshake failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise TargetUnreachable(f"{where} unreachable: {reason(exc)}") from None


class Certificate(nagiosplugin.Resource):  # type: ignore[misc]  # nagiosplugin is untyped
    """The certificate one service presents, judged: chain, names, validity, days left."""

    def __init__(self, target: Target, deadline: Deadline) -> None:
        self.target, self.deadline = target, deadline

    def probe(self) -> list[nagiosplugin.Metric]:
        """Findings for the chain, the names and the validity period, then `days_left`."""
        from toolkit.pki import authority, verify

        t = self.target
        try:
            presented = fetch(t.address, t.port, t.protocol, t.ca_file, self.deadline)
        except TargetUnreachable as exc:
            return [model.finding("reach", Critical, str(exc))]
        from cryptography import x509

        cert = x509.load_der_x509_certificate(presented.der)
        at = authority.now()
        out = [model.finding("chain", *judge_chain(presented, cert, t.ca_file))]
        out.append(model.finding("names", *judge_names(t.names, verify.cert_names(cert))))
        wrong = verify.validity(cert, at)
        if wrong:
            out.append(model.finding("validity", Critical, wrong))
        days = (cert.not_valid_after_utc - at).total_seconds() / 86400
        out.append(nagiosplugin.Metric("days_left", round(days, 1), context="days"))
        return out


def judge_chain(presented: Presented, cert: x509.Certificate, ca_file: Path) -> model.Finding:
    """OK when OpenSSL verified the chain, or only its validity failed and the CA signed it directly."""
    from toolkit.pki import verify

    if presented.chain_error is None:
        return Ok, "chains to the CA"
    if presented.chain_code in EXPIRY_CODES and verify.chains_to(cert, [], verify.read_certs(ca_file)):
        return Ok, "chains to the CA (validity judged below)"
    return Critical, f"not signed by the CA in {ca_file} ({presented.chain_error})"


def judge_names(expected: tuple[str, ...], present: Names) -> model.Finding:
    """OK when every expected name (DNS name or address) is among the certificate's SANs."""
    have = {*present.dns, *(str(a) for a in present.ips)}
    missing = [n for n in expected if n not in have]
    if missing:
        return Critical, f"certificate lacks {', '.join(missing)} (has {present or 'no SANs'})"
    return Ok, f"names {', '.join(expected)}" if expected else "no names to check"


@dataclass(frozen=True)
class Target:
    """Where to connect, how, what to trust and which names the certificate must carry."""

    label: str
    address: str
    port: int
    protocol: str
    ca_file: Path
    names: tuple[str, ...]


@dataclass(frozen=True)
class Wanted:
    """What the command line asks for (`kgt probe cert`'s own options)."""

    host: str | None
    port: int | None
    node: str | None
    vip: str | None
    names: tuple[str, ...]
    ca: Path | None
    protocol: str | None


def target(topology: Topology | None, wanted: Wanted) -> Target:
    """The target from plain arguments and, when given, the topology (see the module docstring)."""
    host, port, node, vip, protocol = wanted.host, wanted.port, wanted.node, wanted.vip, wanted.protocol
    label, address, expected = host or "", host, list(wanted.names)
    if (node or vip) and topology is None:
        raise ProbeUnknown("--node and --vip need a topology (the first argument)")
    if node and vip:
        raise ProbeUnknown("give --node or --vip, not both")
    proto = protocol or ("mysql" if port == 3306 else None)
    if topology is not None and node:
        default_address, label, default_port, found = _node(topology, node, proto)
        address, port, expected = host or default_address, port or default_port, expected or found
    elif topology is not None and vip:
        default_address, label, default_port, found = _vip(topology, vip, proto or "tls")
        address, port, expected = host or default_address, port or default_port, expected or found
    if not address:
        raise ProbeUnknown("give -H HOST -P PORT, or TOPOLOGY --node NAME / --vip NAME")
    if port is None:
        raise ProbeUnknown("give -P PORT")
    if wanted.ca is None and topology is None:
        raise ProbeUnknown("give --ca FILE, or a topology (its tls: CA bundle)")
    ca_file = wanted.ca or _ca_of(topology)
    return Target(
        label or address, address, port, proto or ("mysql" if port == 3306 else "tls"), ca_file, tuple(expected)
    )


def _ca_of(topology: Topology | None) -> Path:
    from toolkit.pki.store import with_tls

    assert topology is not None
    tls = with_tls(topology).tls
    assert tls is not None
    return tls.ca_file


def _node(topology: Topology, name: str, protocol: str | None) -> tuple[str, str, int | None, list[str]]:
    """A host: its address, its service port (MariaDB for a Galera node with mysql), every SAN it must carry."""
    from toolkit.pki.names import subject_alt_names
    from toolkit.probes import targets

    found = targets.host(topology, name)
    port = found.settings.galera.port if found.has("galera") and protocol in (None, "mysql") else None
    names = subject_alt_names(topology, found)
    return str(found.address), found.name, port, [*names.dns, *(str(a) for a in names.ips)]


def _vip(topology: Topology, name: str, protocol: str) -> tuple[str, str, int | None, list[str]]:
    """A VIP: its address, its region's Keystone (or, with mysql, write) port and name, and the address itself."""
    from toolkit.render import zone

    found = next((v for v in topology.vips if v.name == name), None)
    if found is None:
        raise ProbeUnknown(f"no VIP {name!r} in {topology.source} (known: {', '.join(v.name for v in topology.vips)})")
    region = topology.region(found.region)
    settings = region.with_role("haproxy")[0].settings.haproxy
    relative = zone.database_name(region) if protocol == "mysql" else zone.keystone_name(region)
    port = settings.write_port if protocol == "mysql" else settings.keystone_port
    return str(found.address), found.name, port, [zone.fqdn(topology, relative), str(IPv4Address(found.address))]


def main(args: ProbeArgs, **options: Any) -> int:
    """Run the probe; return the exit code."""

    def make(deadline: Deadline) -> nagiosplugin.Check:
        found = target(args.model(), Wanted(**options))

        def ok_text(results: nagiosplugin.Results) -> str:
            days = results["days_left"].metric.value
            where = f"{found.label} ({found.address}:{found.port})"
            return f"{where} presents a certificate of the site CA with the expected names, {days:g} days left"

        return model.check(
            NAME,
            ok_text,
            Certificate(found, deadline),
            model.Scalar("days", args.warning or "30:", args.critical or "7:", label="days left"),
        )

    return execute(NAME, make, timeout=args.timeout, verbose=args.verbose)
