"""The router loop: read packets from the TUN device, shape them, write them back, until SIGTERM.

SIGHUP forces a config reload, SIGUSR1 logs the counters; signals reach the loop through
a wake-up pipe that ``select`` watches beside the TUN device.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .config import load_config
from .errors import SetupError, log
from .netsetup import setup
from .schedule import Ticker, wait_timeout
from .shaper import Shaper
from .tun import is_tun, open_tun
from .watcher import ConfigWatcher

RELOAD_INTERVAL_S = 0.1
STATS_INTERVAL_S = 1.0
READ_BATCH = 256
READ_SIZE = 65_536
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)


@contextlib.contextmanager
def signal_pipe(signals: Iterable[signal.Signals]) -> Iterator[int]:
    """While inside, *signals* only write their number to a pipe; yields the pipe's read end."""
    rpipe, wpipe = os.pipe()
    os.set_blocking(rpipe, False)
    os.set_blocking(wpipe, False)
    old_handlers = {sig: signal.signal(sig, lambda *_: None) for sig in signals}
    old_wakeup = signal.set_wakeup_fd(wpipe, warn_on_full_buffer=False)
    try:
        yield rpipe
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        os.close(rpipe)
        os.close(wpipe)


class Router:
    """One ``run``: the shaper between the TUN device and itself, and its counters."""

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        shaper: Shaper,
        stats_path: str | os.PathLike[str] | None,
        clock: Callable[[], float],
    ) -> None:
        self.config_path = config_path
        self.shaper = shaper
        self.watcher = ConfigWatcher(config_path, RELOAD_INTERVAL_S)
        self.stats_file = Path(stats_path) if stats_path is not None else None
        self.stats_ticker = Ticker(STATS_INTERVAL_S)
        self.clock = clock
        self.started = time.monotonic()
        self.reloads = 0
        self.write_errors = 0
        self.stopping = False

    def serve(self, tun: int, rpipe: int) -> int:
        """Shape until SIGTERM/SIGINT arrives on *rpipe*; 0, or 1 after an OS error."""
        try:
            while not self.stopping:
                self._step(tun, rpipe)
        except OSError as exc:
            log(f"fatal: {exc}")
            return 1
        return 0

    def _step(self, tun: int, rpipe: int) -> None:
        now = self.clock()
        self._send(tun, self.shaper.pop_due(now))
        new = self.watcher.poll(now)
        if new is not None:
            self.shaper.update(new)
            self.reloads += 1
            log(f"reloaded {self.config_path}: {new.summary()}")
        if self.stats_file is not None and self.stats_ticker.due(now):
            self.write_stats(self.stats_file)
        timeout = wait_timeout(now, (self.watcher.next_check, self.shaper.next_due()))
        try:
            ready, _, _ = select.select([tun, rpipe], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            ready = []
        if rpipe in ready:
            self._on_signals(os.read(rpipe, 64))
        if tun in ready:
            self._forward(tun)

    def _send(self, tun: int, packets: Iterable[bytes]) -> None:
        for pkt in packets:
            try:
                os.write(tun, pkt)
            except OSError:
                self.write_errors += 1

    def _forward(self, tun: int) -> None:
        """Read what the TUN device has (a batch at most) and send what may go now."""
        now = self.clock()
        for _ in range(READ_BATCH):
            try:
                pkt = os.read(tun, READ_SIZE)
            except BlockingIOError:
                break
            out = self.shaper.submit(pkt, now)
            if out is not None:
                self._send(tun, (out,))

    def _on_signals(self, signums: bytes) -> None:
        for signum in signums:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
            elif signum == signal.SIGHUP:
                self.watcher.force_reload()
            elif signum == signal.SIGUSR1:
                log(f"stats {json.dumps(self.shaper.stats.as_dict())} {self.queue_text('queued')}")

    def queue_text(self, label: str) -> str:
        """``LABEL=N write_errors=M`` for the log."""
        return f"{label}={len(self.shaper.queue)} write_errors={self.write_errors}"

    def write_stats(self, path: Path) -> None:
        """The counters as one JSON object in *path* (replaced atomically)."""
        shaper = self.shaper
        data: dict[str, object] = dict(shaper.stats.as_dict())
        data.update(
            queued=len(shaper.queue),
            queued_bytes=shaper.queue.queued_bytes,
            reloads=self.reloads,
            uptime_s=round(time.monotonic() - self.started, 3),
            pid=os.getpid(),
            config=shaper.config.summary(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, path)


def run(
    config_path: str | os.PathLike[str],
    *,
    do_setup: bool = True,
    stats_path: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Shape traffic until SIGTERM/SIGINT; returns an exit status.

    SIGHUP forces a config reload, SIGUSR1 logs the counters.
    """
    config = load_config(config_path)
    settings = setup(config_path) if do_setup else config.router
    if not is_tun(settings.tun):
        raise SetupError(f"TUN device {settings.tun} missing: run 'setup' first")
    router = Router(config_path, Shaper(config), stats_path, clock)
    tun = open_tun(settings.tun)
    try:
        os.set_blocking(tun, False)
        with signal_pipe(SIGNALS) as rpipe:
            log(f"running on {settings.tun} (pid {os.getpid()}): {config.summary()}")
            rc = router.serve(tun, rpipe)
    finally:
        os.close(tun)
        if router.stats_file is not None:
            with contextlib.suppress(OSError):
                router.write_stats(router.stats_file)
    log(f"stopped: {json.dumps(router.shaper.stats.as_dict())} {router.queue_text('discarded_queued')}")
    return rc
