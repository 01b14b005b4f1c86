"""Notices when the config file changes, so ``kgt lab wan`` changes the WAN by rewriting it."""

from __future__ import annotations

import os
from pathlib import Path

from .config import WanConfig, load_config
from .errors import ConfigError, log
from .schedule import Ticker


class ConfigWatcher:
    """Notices when the config file changes (looked at no more often than `interval`)."""

    def __init__(self, path: str | os.PathLike[str], interval: float) -> None:
        self.path = Path(path)
        self.interval = interval
        self.ticker = Ticker(interval)
        self.signature = self._signature()
        self.failed_signature: tuple[int, int, int] | None = None

    @property
    def next_check(self) -> float:
        """When the file is looked at next (same clock as the ``now`` given to `poll`)."""
        return self.ticker.next

    def force_reload(self) -> None:
        """Reload at the next `poll`, changed or not (SIGHUP)."""
        self.signature = None
        self.ticker.reset()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def poll(self, now: float, force: bool = False) -> WanConfig | None:
        """A new config if the file changed and parses, else ``None``."""
        if not self.ticker.due(now, force=force):
            return None
        sig = self._signature()
        if sig is None or (not force and sig == self.signature):
            return None
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            if sig != self.failed_signature:
                log(f"reload of {self.path} failed, keeping old config: {exc}")
                self.failed_signature = sig
            return None
        self.signature = sig
        return config
