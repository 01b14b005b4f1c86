"""A host's generation: every file it must hold, and what to do once the files are in place.

JSON in `hosts/<host>/manifest` (`toolkit.rollout.keys`), written last in the same etcd
transaction as the file contents it names, so an agent never sees half a generation:

    {"site": str, "host": str, "generation": int, "published": ISO 8601 time,
     "files": [{"path": "/etc/haproxy/haproxy.cfg", "sha256": hex, "mode": "0600", "owner": "root",
                "service": "haproxy", "action": "restart|reload|apply|none", "check": str|null}]}

`sha256` names the blob that holds the content (`hosts/<host>/blobs/<sha256>`). Two
manifests with the same `files` are the same generation's content: a publish that changes
nothing writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from toolkit.errors import StoreError
from toolkit.render.engine import RenderedFile


def digest(content: bytes) -> str:
    """The SHA-256 of a file's content, hex."""
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One managed file of a host."""

    path: str  # absolute on the host
    sha256: str
    mode: int
    owner: str
    service: str
    action: str
    check: str | None

    @classmethod
    def of(cls, f: RenderedFile) -> Entry:
        """The entry of a rendered file of a host."""
        return cls(f.target, digest(f.content.encode()), f.mode, f.owner, f.service, f.action, f.check)

    def to_json(self) -> dict[str, Any]:
        """The entry as the manifest writes it (mode in octal)."""
        return {**asdict(self), "mode": f"{self.mode:04o}"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """Read back what `to_json` wrote."""
        return cls(
            str(data["path"]),
            str(data["sha256"]),
            int(str(data["mode"]), 8),
            str(data["owner"]),
            str(data["service"]),
            str(data["action"]),
            None if data.get("check") is None else str(data["check"]),
        )


@dataclass(frozen=True)
class Manifest:
    """One host's generation."""

    site: str
    host: str
    generation: int
    published: str
    files: tuple[Entry, ...]

    @classmethod
    def build(cls, site: str, host: str, generation: int, published: str, files: Iterable[RenderedFile]) -> Manifest:
        """The manifest of a host's rendered files, sorted by path."""
        entries = sorted((Entry.of(f) for f in files), key=lambda e: e.path)
        return cls(site, host, generation, published, tuple(entries))

    def same_files(self, other: Manifest | None) -> bool:
        """Whether `other` asks for exactly these files, contents and actions."""
        return other is not None and other.files == self.files

    def entry(self, path: str) -> Entry | None:
        """The entry of `path`, if managed."""
        return next((e for e in self.files if e.path == path), None)

    def to_bytes(self) -> bytes:
        """The JSON the store holds."""
        data = {
            "site": self.site,
            "host": self.host,
            "generation": self.generation,
            "published": self.published,
            "files": [e.to_json() for e in self.files],
        }
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, what: str) -> Manifest:
        """Parse a stored manifest; a StoreError saying `what` when it is not one."""
        try:
            data = json.loads(raw)
            files = tuple(Entry.from_json(e) for e in data["files"])
            return cls(str(data["site"]), str(data["host"]), int(data["generation"]), str(data["published"]), files)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{what}: not a kgt manifest ({exc.__class__.__name__})") from None
