"""Topology text edits shared by the unit tests, the lab tests and the benchmarks."""

from __future__ import annotations

import re

_TLS_BLOCK = re.compile(r"^tls:.*\n(?:[ #].*\n)*", re.M)


def replace_tls(text: str, by: str = "") -> str:
    """A topology's text with its top-level `tls:` section replaced by `by` (a whole block, or nothing)."""
    return _TLS_BLOCK.sub(by, text)
