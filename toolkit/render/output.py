"""Write rendered files to an output directory all at once, with a manifest.

Everything is written to a temporary sibling directory first and swapped in only when
complete, so a failure leaves the previous output untouched; a directory kgt did not
write is never replaced without `force`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.errors import RenderError
from toolkit.render.engine import RenderedFile
from toolkit.topology.model import Topology

MANIFEST = "manifest.json"


def sha256(text: str) -> str:
    """Hex sha256 of a file's text."""
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(topology: Topology, files: list[RenderedFile]) -> dict[str, Any]:
    """The manifest: every file with its digest, mode, owner service and reload command."""
    return {
        "generator": "kgt",
        "version": __version__,
        "topology": topology.name,
        "files": [
            {
                "path": f.path,
                "host": f.host,
                "sha256": sha256(f.content),
                "mode": f"{f.mode:04o}",
                "owner": f.owner,
                "service": f.service,
                "reload": f.reload,
            }
            for f in files
        ],
    }


def is_kgt_output(directory: Path) -> bool:
    """Whether `directory` holds a manifest written by kgt."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("generator") == "kgt"


def write(topology: Topology, files: list[RenderedFile], out: Path, force: bool = False) -> None:
    """Replace `out` with exactly `files` plus the manifest, atomically."""
    out = out.absolute()
    if out.exists() and not out.is_dir():
        raise RenderError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not is_kgt_output(out) and not force:
        raise RenderError(f"{out}: directory is not empty and was not written by kgt (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.kgt-", dir=out.parent))
    try:
        for f in files:
            target = staging / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f.mode)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(f.content)
            os.chmod(target, f.mode)
        (staging / MANIFEST).write_text(json.dumps(manifest(topology, files), indent=2, sort_keys=True) + "\n")
        os.chmod(staging, 0o755)
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(retired)
    os.replace(out, retired)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(retired, out)
        raise
    shutil.rmtree(retired, ignore_errors=True)
