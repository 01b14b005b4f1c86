"""gunicorn settings for Keystone in the lab: TLS handshakes and reads with a deadline.

gunicorn's sync worker serves one connection at a time and reads without a timeout, so
a client that connects and then vanishes mid-handshake (a WAN cut drops its packets, and
HAProxy ends its health checks with a reset, which is never resent) holds the worker until
the arbiter kills it (`--timeout`). A cut between regions does that to every region's
Keystone at once, through the other regions' health checks: on the lab the cut-off region
issued no token at all during a 20 s cut. Here every accepted TLS connection gets a
socket deadline before its handshake, the way a TLS front (nginx, HAProxy) bounds a
client: a silent peer costs a worker `DEADLINE` seconds, never more. Keystone's requests
are small and answered in well under a second.

Used as `gunicorn -c /docker/keystone_gunicorn.py …` (toolkit/services.py) with
`--certfile/--keyfile` on a TLS site; without TLS the hook is never called.
"""

import ssl

DEADLINE = 5.0  # seconds a TLS client may take for its handshake and each read or write


class _DeadlineContext(ssl.SSLContext):
    """A server context whose sockets time out instead of blocking for ever."""

    def wrap_socket(self, sock, *args, **kwargs):
        sock.settimeout(DEADLINE)
        return super().wrap_socket(sock, *args, **kwargs)


def ssl_context(conf, default_ssl_context_factory):
    """gunicorn's hook: the certificate and ciphers of its command line (--certfile, --keyfile,
    --ciphers: toolkit/services.py), TLS 1.2+, and the deadline."""
    context = _DeadlineContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(conf.certfile, conf.keyfile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(conf.ciphers)
    return context
