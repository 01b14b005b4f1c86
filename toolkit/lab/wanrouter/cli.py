"""The router's command line: ``setup``, ``run``, ``teardown``, ``status``, ``check``.

A config or setup error is one ``kgt-wan: error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

from .config import DEFAULT_CONFIG_PATH, load_config
from .errors import ConfigError, SetupError, log
from .loop import run
from .netsetup import netem_available, settings_from, setup, status, teardown


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wanrouter", description="Userspace WAN delay/loss/cut router for the kgt lab."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="sysctls, TUN device, policy rule and route")
    p.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    p = sub.add_parser("run", help="shape traffic until SIGTERM (does setup first)")
    p.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    p.add_argument("--no-setup", action="store_true", help="assume setup was done")
    p.add_argument("--stats", default=None, help="write JSON counters here every second")
    p = sub.add_parser("teardown", help="remove rule, route and TUN device")
    p.add_argument("--config", default=None, help="read 'router' settings from here")
    p = sub.add_parser("status", help="print the router state as JSON")
    p.add_argument("--config", default=None)
    p.add_argument("--netem", action="store_true", help="also probe for sch_netem")
    p = sub.add_parser("check", help="validate a config file and print its summary")
    p.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    return parser


def _setup(args: argparse.Namespace) -> int:
    setup(args.config)
    log(f"setup done: {json.dumps(status(settings_from(args.config)))}")
    return 0


def _run(args: argparse.Namespace) -> int:
    return run(args.config, do_setup=not args.no_setup, stats_path=args.stats)


def _teardown(args: argparse.Namespace) -> int:
    teardown(settings_from(args.config))
    return 0


def _status(args: argparse.Namespace) -> int:
    info = status(settings_from(args.config))
    if args.config is not None:
        info["config"] = load_config(args.config).summary()
    if args.netem:
        info["netem_available"] = netem_available()
    print(json.dumps(info, indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    print(load_config(args.config).summary())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "setup": _setup,
    "run": _run,
    "teardown": _teardown,
    "status": _status,
    "check": _check,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, SetupError) as exc:
        log(f"error: {exc}")
        return 2
