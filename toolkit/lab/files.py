"""Each lab container's rendered files, copied into it with the mode and owner the manifest names.

They are copies, not bind mounts: after boot the host's agent owns them and replaces them
with each published generation (a rename over a bind-mounted file fails), as on a real host.
One `tar` stream per container (the image resolves the owners' names to its own ids), then
one `chown` per owner.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
from pathlib import Path

from toolkit.errors import LabError
from toolkit.lab.docker import docker
from toolkit.topology.model import Host


def install(rendered: Path, host: Host) -> int:
    """Copy `host`'s rendered files into its container; how many."""
    files = [f for f in json.loads((rendered / "manifest.json").read_text())["files"] if f["host"] == host.name]
    stream = io.BytesIO()
    owners: dict[str, list[str]] = {}
    with tarfile.open(fileobj=stream, mode="w") as tar:
        for f in files:
            data = (rendered / f["path"]).read_bytes()
            target = f["path"].split("/", 1)[1]
            info = tarfile.TarInfo(target)
            info.size, info.mode, info.mtime = len(data), int(f["mode"], 8), 0
            tar.addfile(info, io.BytesIO(data))
            if f["owner"] != "root":
                owners.setdefault(f["owner"], []).append("/" + target)
    chown = "".join(f" && chown {owner}: {' '.join(map(shlex.quote, paths))}" for owner, paths in owners.items())
    result = docker("exec", "-i", host.name, "sh", "-c", f"tar -x -o -C / -f -{chown}", input=stream.getvalue())
    if not result.ok:
        raise LabError(f"host {host.name}: copying its rendered files in failed: {result.stderr.strip()[-500:]}")
    return len(files)
