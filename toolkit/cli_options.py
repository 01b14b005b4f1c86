"""What every command group shares: its options, defined once, and its usage-error exit code.

Model: Patroni's `patroni/ctl.py`. `--format table|json`, the topology (first argument)
and `--secrets` mean the same in every command; `FamilyGroup` is the one way a group
turns a usage error into its family's exit code (README: "Exit codes").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

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


def duration_option(*decls: str, default: str | None, help: str, show_default: bool = True) -> Callable[[F], F]:
    """An option whose value is a duration (`--timeout 5s`), given to the command in seconds."""
    return click.option(
        *decls,
        default=default,
        callback=duration,
        show_default=show_default and default is not None,
        metavar="DURATION",
        help=help,
    )


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


def topology(*, required: bool = True) -> Callable[[F], F]:
    """The topology file as the first argument (parameter `topology`), the same in every command.

    `--topology FILE` (the form `kgt probe` and `kgt drill` used) is still accepted for one
    release, with a warning on stderr; giving both is a usage error. `required=False`:
    the command has a default (its group's help says which) and sees None.
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


def secrets(func: F) -> F:
    """`--secrets FILE` (parameter `secrets_path`): default, the secrets file the topology names."""
    return click.option(
        "--secrets",
        "secrets_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="secrets file (default: the one the topology names)",
    )(func)


UsageErrorHandler = Callable[[click.UsageError, click.Context], None]


class FamilyGroup(click.Group):
    """A command group whose usage errors exit with its family's code: `usage_exit`.

    Click exits 2 on a usage error, which a monitoring system reads as CRITICAL: the
    check and probe families say 3 (UNKNOWN) instead. A usage error of the group itself
    (`kgt probe --bogus`) and of any sub-command is caught here; `on_usage_error` prints
    it (default: click's own message on stderr). Give the family's code as
    `@click.group(cls=FamilyGroup, usage_exit=3)`.
    """

    def __init__(
        self, *args: Any, usage_exit: int = 2, on_usage_error: UsageErrorHandler | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.usage_exit = usage_exit
        self.on_usage_error = on_usage_error or _show

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the group's own options; a usage error exits `usage_exit`."""
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            self._fail(exc, ctx)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; its usage errors (an unknown command included) exit `usage_exit`."""
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            self._fail(exc, ctx)

    def _fail(self, exc: click.UsageError, ctx: click.Context) -> NoReturn:
        self.on_usage_error(exc, ctx)
        ctx.exit(self.usage_exit)


def _show(exc: click.UsageError, _ctx: click.Context) -> None:
    exc.show()


def selection() -> Callable[[F], F]:
    """`--region R` and `--host H`, repeatable (parameters `regions`, `hosts`): part of the site.

    The command turns them into a `toolkit.render.select.Selection`; none given is the whole site.
    """

    def decorate(func: F) -> F:
        func = click.option("--host", "hosts", multiple=True, metavar="HOST", help="only this host (repeatable)")(func)
        return click.option(
            "--region", "regions", multiple=True, metavar="REGION", help="only this region's hosts (repeatable)"
        )(func)

    return decorate
