"""Click option helpers shared by the command groups (`kgt check`, `kgt drill`, …)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


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


FORMATS = ("table", "json")


def output_format(*, aliases: dict[str, str] | None = None) -> Callable[[F], F]:
    """`--format table|json` (parameter `fmt`), the same in every command.

    `aliases` are further accepted values mapped to one of FORMATS (`text` → `table`
    where a command printed `text` before): the command always sees `table` or `json`.
    """
    accepted = [*FORMATS, *(aliases or {})]

    def normalise(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        return (aliases or {}).get(value, value)

    return click.option(
        "--format",
        "fmt",
        type=click.Choice(accepted),
        default="table",
        show_default=True,
        callback=normalise,
        help="table for people, json for programs" + (f" ({', '.join(aliases)}: table)" if aliases else ""),
    )


LEGACY_TOPOLOGY = (
    "--topology is deprecated and goes away in the next release: give the topology file as the first argument"
)


def topology(*, required: bool = True, help_default: str | None = None) -> Callable[[F], F]:
    """The topology file as the first argument (parameter `topology`), the same in every command.

    `--topology FILE` (the form `kgt probe` and `kgt drill` used) is still accepted for one
    release, with a warning on stderr; giving both is a usage error. `required=False`:
    the command has a default (`help_default` says which) and sees None.
    """

    def resolve(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
        legacy = ctx.params.pop("legacy_topology", None)
        if legacy is not None:
            if value is not None:
                raise click.UsageError("give the topology once: as the first argument (not also --topology)", ctx)
            click.echo(f"kgt: {LEGACY_TOPOLOGY}", err=True)
            value = legacy
        if value is None and required:
            raise click.UsageError("Missing argument 'TOPOLOGY'.", ctx)
        return value

    def decorate(func: F) -> F:
        func = click.argument(
            "topology",
            required=False,
            type=click.Path(dir_okay=False, path_type=Path),
            callback=resolve,
            metavar="TOPOLOGY" if required else "[TOPOLOGY]",
        )(func)
        return click.option(
            "--topology",
            "legacy_topology",
            type=click.Path(dir_okay=False, path_type=Path),
            hidden=True,
            is_eager=True,  # parsed before the argument, so the argument's callback sees it
            expose_value=False,
            callback=_remember_legacy,
            help="deprecated: the topology file (give it as the first argument)",
        )(func)

    return decorate


def _remember_legacy(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.params["legacy_topology"] = value
