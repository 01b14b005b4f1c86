"""The order of a test run: unit tests in any order, integration tests in lab stages.

Unit tests (tests/unit) are independent of each other and of their order; in CI they run
in the random order pytest-randomly gives them (its seed is in the header: rerun one order
with `-p randomly --randomly-seed=N`).

Integration tests (tests/integration) say which lab they need, and their fixtures give it
to them whatever ran before (tests/integration/conftest.py):

- the shared example lab: the `lab` fixture (booted again if an earlier test took it down);
- the shared lab, which the test then takes down: `lab` and `@pytest.mark.takes_lab_down`;
- a lab of its own: `@pytest.mark.own_lab(why)`, which takes the shared lab down first;
- no lab: none of these.

Any order is therefore correct; the order only decides how often the example lab is booted
(≈ 3 min each). So the integration tests always run as one block, in collection order
(files alphabetical) within these stages, which boots the example lab once:

    0 shared lab   1 takes the shared lab down   2 no lab   3 own lab

and randomly's shuffle is undone for them. `--test-order` (or the environment variable
KGT_TEST_ORDER) changes that, to show that no test depends on the file before it:

- `lifecycle` (default): as above;
- `reverse`: the integration files in reverse collection order, stages kept (one boot);
- `reverse-unstaged`: the files in reverse and no stages: a takes-down or own-lab test may
  then come before shared-lab tests, whose `lab` fixture boots the example lab again.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent / "integration"
ORDERS = ("lifecycle", "reverse", "reverse-unstaged")
SHARED_LAB, TAKES_LAB_DOWN, NO_LAB, OWN_LAB = range(4)
STAGE_NAMES = ("shared lab", "takes the shared lab down", "no lab", "own lab")

collected_at = pytest.StashKey[int]()
counter = pytest.StashKey[Iterator[int]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--test-order",
        choices=ORDERS,
        default=None,
        help="order of the integration tests: lifecycle (default), reverse (files in reverse, lab stages "
        "kept) or reverse-unstaged (files in reverse, no stages); default from KGT_TEST_ORDER",
    )


def order_asked(config: pytest.Config) -> str:
    """The order asked for: `--test-order`, else KGT_TEST_ORDER, else `lifecycle`."""
    order = config.getoption("test_order") or os.environ.get("KGT_TEST_ORDER") or "lifecycle"
    if order not in ORDERS:
        raise pytest.UsageError(f"KGT_TEST_ORDER={order}: not one of {', '.join(ORDERS)}")
    return str(order)


def pytest_report_header(config: pytest.Config) -> str:
    order = order_asked(config)
    stages = " < ".join(STAGE_NAMES) if order != "reverse-unstaged" else "none"
    files = "in reverse" if order != "lifecycle" else "in collection order"
    return f"kgt test order: {order} (integration files {files}; lab stages: {stages})"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[counter] = itertools.count()
    order_asked(config)  # a bad KGT_TEST_ORDER stops the run before anything is collected


def pytest_itemcollected(item: pytest.Item) -> None:
    """Number every test as collected: the fixed order survives randomly's shuffle."""
    item.stash[collected_at] = next(item.config.stash[counter])


def is_integration(item: pytest.Item) -> bool:
    """Whether `item` is one of tests/integration."""
    return INTEGRATION in Path(item.path).resolve().parents


def lab_stage(item: pytest.Item) -> int:
    """The lab stage of an integration test, from its fixtures and markers; a contradiction is a usage error."""
    # The closure of a test's fixtures: `lab` (and anything else on the shared lab) needs `lab_booted`;
    # a module's own fixture that happens to be called `lab` (test_wanrouter_netns.py) does not.
    uses_lab = "lab_booted" in getattr(item, "fixturenames", ())
    takes_down = item.get_closest_marker("takes_lab_down") is not None
    own = item.get_closest_marker("own_lab") is not None
    if own and uses_lab:
        raise pytest.UsageError(f"{item.nodeid}: marked own_lab but uses the shared lab (fixture `lab`)")
    if takes_down and not uses_lab:
        raise pytest.UsageError(f"{item.nodeid}: marked takes_lab_down but does not use the shared lab (fixture `lab`)")
    if own:
        return OWN_LAB
    if takes_down:
        return TAKES_LAB_DOWN
    return SHARED_LAB if uses_lab else NO_LAB


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the integration tests in their fixed order (see the module docstring), as one block."""
    lab_items = [item for item in items if is_integration(item)]
    if not lab_items:
        return
    order = order_asked(config)
    others = [item for item in items if not is_integration(item)]
    by_collection = sorted(lab_items, key=lambda item: item.stash[collected_at])
    files = list(dict.fromkeys(Path(item.path) for item in by_collection))
    if order != "lifecycle":
        files.reverse()
    rank = {path: n for n, path in enumerate(files)}

    def key(item: pytest.Item) -> tuple[int, int, int]:
        stage = lab_stage(item)  # checked in every order, used in the staged ones
        return stage if order != "reverse-unstaged" else 0, rank[Path(item.path)], item.stash[collected_at]

    fixed = sorted(lab_items, key=key)
    integration_first = not others or by_collection[0].stash[collected_at] < min(
        item.stash[collected_at] for item in others
    )
    items[:] = fixed + others if integration_first else others + fixed


def pytest_collection_finish(session: pytest.Session) -> None:
    """The order asked for and the integration files in the order they run, even under -q (for the CI log)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    files = list(dict.fromkeys(Path(item.path).stem for item in session.items if is_integration(item)))
    if reporter is not None and files:
        reporter.write_line(f"{pytest_report_header(session.config)}; files: {', '.join(files)}")
