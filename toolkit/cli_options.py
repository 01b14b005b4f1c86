"""Click option helpers shared by the command groups (`kgt check`, `kgt drill`, …)."""

from __future__ import annotations

import click


def duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    """A click callback: `40s`, `500ms`, `2m` or a number of seconds → seconds (None stays None)."""
    from toolkit.topology.document import parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    assert isinstance(seconds, float)
    return seconds
