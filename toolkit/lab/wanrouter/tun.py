"""The TUN device the router reads cross-region packets from and writes them back to."""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

from .config import IFNAMSIZ
from .errors import SetupError

# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def tun_ifreq(name: str, flags: int) -> bytes:
    """The ``struct ifreq`` for TUNSETIFF: the name and the flags."""
    encoded = name.encode()
    if not encoded or len(encoded) >= IFNAMSIZ:
        raise SetupError(f"bad interface name {name!r}")
    return struct.pack("16sH22x", encoded, flags)


def open_tun(name: str, persist: bool | None = None) -> int:
    """Attach to (creating if need be) TUN device *name*; the file descriptor."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError(f"cannot open /dev/net/tun: {exc}") from exc
    try:
        fcntl.ioctl(fd, TUNSETIFF, tun_ifreq(name, IFF_TUN | IFF_NO_PI))
        if persist is not None:
            fcntl.ioctl(fd, TUNSETPERSIST, 1 if persist else 0)
    except OSError as exc:
        os.close(fd)
        hint = " (another 'run' is attached?)" if exc.errno == 16 else ""
        raise SetupError(f"TUNSETIFF {name}: {exc}{hint}") from exc
    return fd


def link_exists(name: str) -> bool:
    """Whether network interface *name* exists."""
    return Path("/sys/class/net", name).exists()


def is_tun(name: str) -> bool:
    """Whether network interface *name* is a TUN/TAP device."""
    return Path("/sys/class/net", name, "tun_flags").exists()
