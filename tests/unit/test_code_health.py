"""The tree keeps the shape issue 10 gave it: one home for wsrep rows and the quorum rule, faults
dispatched by class (never by name), and functions and modules a reader can hold in mind.

Checked on the source text and its syntax tree, so a change that brings an old habit back fails
here, in the unit tests, not in a review.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TOOLKIT = Path(__file__).resolve().parents[2] / "toolkit"
SOURCES = sorted(TOOLKIT.rglob("*.py"))
MAX_FUNCTION = 80  # lines from `def` to the end, docstring included (a click command's options are its decorators)
MAX_MODULE = 500

# A wsrep status or variable name used as a key into rows: `rows.get("wsrep_…")`, `rows["wsrep_…"]`.
ROW_LOOKUP = re.compile(r"""(\.get\(|\[)\s*["']wsrep_[a-z_]+["']""")


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def relative(path: Path) -> str:
    return path.relative_to(TOOLKIT.parent).as_posix()


def test_the_sources_are_found() -> None:
    assert len(SOURCES) > 100


def test_wsrep_rows_are_read_only_in_toolkit_wsrep() -> None:
    readers = [relative(p) for p in SOURCES if ROW_LOOKUP.search(p.read_text(encoding="utf-8"))]
    assert readers == ["toolkit/wsrep.py"]


def _weight_halving(module: ast.Module) -> list[int]:
    """Lines that compare against a weight doubled or halved: the quorum rule written out."""
    out = []
    for node in ast.walk(module):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            for part in ast.walk(side):
                if not (isinstance(part, ast.BinOp) and isinstance(part.op, (ast.Mult, ast.Div, ast.FloorDiv))):
                    continue
                names = {n.id for n in ast.walk(part) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(part) if isinstance(n, ast.Attribute)}
                two = any(isinstance(c, ast.Constant) and c.value == 2 for c in ast.walk(part))
                if two and any("weight" in n or n in ("total", "previous") for n in names):
                    out.append(node.lineno)
    return out


def test_the_quorum_rule_is_one_function_every_judge_uses() -> None:
    """`wsrep.is_primary` is the rule; no other module compares a weight with its half."""
    found = {relative(p): lines for p in SOURCES if (lines := _weight_halving(tree(p)))}
    assert set(found) == {"toolkit/wsrep.py"}, found
    users = [relative(p) for p in SOURCES if "is_primary(" in p.read_text(encoding="utf-8")]
    assert {"toolkit/analysis/cluster.py", "toolkit/analysis/combine.py", "toolkit/topology/survival.py"} <= set(users)


def _name_compares(module: ast.Module, names: set[str]) -> list[int]:
    """Lines comparing anything with a fault's name (`kind == "proxy-loss"`, `name in (...)`)."""
    out = []
    for node in ast.walk(module):
        if isinstance(node, ast.Compare):
            constants = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant)}
            if constants & names:
                out.append(node.lineno)
    return out


def test_no_fault_is_chosen_by_comparing_with_its_name() -> None:
    from toolkit.drills.faults import base

    names = set(base.REGISTRY)
    assert {"proxy-loss", "region-partition", "node-loss"} <= names
    drills = [p for p in SOURCES if "drills" in p.relative_to(TOOLKIT).parts]  # (the analysis has scenario kinds)
    found = {relative(p): lines for p in drills if (lines := _name_compares(tree(p), names))}
    assert found == {}


@pytest.mark.parametrize("path", SOURCES, ids=relative)
def test_functions_and_modules_stay_short(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE, f"{relative(path)}: {lines} lines"
    for node in ast.walk(tree(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION, f"{relative(path)}:{node.lineno} {node.name}: {length} lines"
