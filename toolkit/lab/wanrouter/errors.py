"""The WAN router's two errors, and its one log line format.

They live here, not in ``toolkit/errors.py``, because the router runs alone in its
container as a stdlib program and imports nothing of the rest of the toolkit; the CLI
edge (``cli.main``) turns both into one ``kgt-wan: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import sys

LOG_PREFIX = "kgt-wan:"


class ConfigError(ValueError):
    """The WAN config is malformed or inconsistent."""


class SetupError(RuntimeError):
    """Router setup (sysctl, ip rule/route, TUN) failed."""


def log(msg: str) -> None:
    """One line on stderr, prefixed so it stands out in the router's log."""
    print(f"{LOG_PREFIX} {msg}", file=sys.stderr, flush=True)
