"""kgt's own TLS client side: one SSL context per CA bundle, and HTTPS connections that verify with it.

Checks, probes, drills and the lab verify every server against the site CA and by the
name or address they dialled (the certificates carry both, `toolkit.pki.names`).
Stdlib only.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import http.client


@functools.lru_cache(maxsize=8)
def context(ca: Path) -> ssl.SSLContext:
    """A client context trusting only `ca`, TLS 1.2 or later, host names checked."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def http_connection(host: str, port: int, timeout: float, ca: Path | None) -> http.client.HTTPConnection:
    """An HTTP connection to `host:port`, HTTPS verified against `ca` when one is given."""
    import http.client  # here: a probe that only speaks MySQL does not pay for it

    if ca is None:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=context(ca))
