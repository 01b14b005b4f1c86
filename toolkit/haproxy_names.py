"""Names in the rendered HAProxy config that the probes, drills and monitors read back.

The renderer writes them and everything that reads HAProxy's stats (`kgt probe haproxy`,
the drill monitors and preflight) matches on them, so they live here, stdlib only, where
a probe can import them without loading the topology model.
"""

from __future__ import annotations

WRITE = "galera-write"
READ = "galera-read"
KEYSTONE = "keystone-api"
LISTENERS = (WRITE, READ, KEYSTONE)

# The write listener's last-resort servers: the region's nodes again, tracking their state
# in the read listener (`/read`: dirty reads of a non-Primary node). They serve only when no
# writer is up, so a cut-off region keeps answering Keystone's reads.
READ_ONLY_SUFFIX = "-readonly"


def read_only_server(node: str) -> str:
    """The write listener's read-only fallback server for Galera node `node`."""
    return node + READ_ONLY_SUFFIX


def node_of(server: str) -> str:
    """The Galera node behind a server name (a read-only fallback names its node)."""
    return server.removesuffix(READ_ONLY_SUFFIX)


def is_read_only(server: str) -> bool:
    """Whether `server` is a read-only fallback of the write listener."""
    return server.endswith(READ_ONLY_SUFFIX)
