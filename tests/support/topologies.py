"""Topology text edits shared by the unit tests, the lab tests and the benchmarks."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "topology" / "example.yaml"

_TLS_BLOCK = re.compile(r"^tls:.*\n(?:[ #].*\n)*", re.M)


def replace_tls(text: str, by: str = "") -> str:
    """A topology's text with its top-level `tls:` section replaced by `by` (a whole block, or nothing)."""
    return _TLS_BLOCK.sub(by, text)


def example_variant(directory: Path, old: str, new: str) -> Path:
    """topology/example.yaml with `old` replaced by `new` (once), its secrets file and PKI kept where they are.

    The same site (its name, secrets and certificates): what a change published to the running
    example lab looks like (tests/integration/test_rollout_lab.py, benchmarks/rollout.py).
    """
    text = EXAMPLE.read_text()
    if old not in text:
        raise ValueError(f"{old!r} is not in {EXAMPLE}")
    text = text.replace(old, new, 1)
    text = text.replace("  file: example.secrets.yaml", f"  file: {EXAMPLE.parent / 'example.secrets.yaml'}")
    text = replace_tls(text, f"tls:\n  dir: {EXAMPLE.parent / 'example.pki'}\n")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"example-{hashlib.sha256(new.encode()).hexdigest()[:8]}.yaml"
    path.write_text(text)
    return path
