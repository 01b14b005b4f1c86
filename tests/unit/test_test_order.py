"""The order of a run (tests/conftest.py): integration tests in lab stages whatever randomly does, unit tests shuffled.

A small suite of fakes (no lab: `lab_booted` is a stub) is collected with the real
tests/conftest.py by an in-process pytest, and the order it would run in is read back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

INTEGRATION_CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def lab_booted():
    return "example"

@pytest.fixture
def lab(lab_booted):
    return lab_booted
"""

FILES = {
    # file: its tests; the alphabetical file order is the collection order
    "test_a_own.py": "@pytest.mark.own_lab\ndef test_own(tmp_path):\n    pass\n",
    "test_b_shared.py": "def test_shared_1(lab):\n    pass\n\ndef test_shared_2(lab):\n    pass\n",
    "test_c_down.py": "@pytest.mark.takes_lab_down\ndef test_down(lab):\n    pass\n",
    "test_d_none.py": "def test_none():\n    pass\n",
    "test_e_netns.py": "@pytest.fixture\ndef lab():\n    return 'netns'\n\ndef test_netns(lab):\n    pass\n",
    "test_f_shared.py": "def test_shared_3(lab):\n    pass\n",
}

MARKERS = """[pytest]
markers =
    takes_lab_down: takes the shared lab down
    own_lab(why): boots a lab of its own
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # The order this run was asked for (`KGT_TEST_ORDER=reverse bash .ci/run`) is not the fake suite's.
    monkeypatch.delenv("KGT_TEST_ORDER", raising=False)
    pytester.makefile(".ini", pytest=MARKERS)
    tests = pytester.mkdir("tests")
    (tests / "conftest.py").write_text(CONFTEST.read_text())
    integration = tests / "integration"
    integration.mkdir()
    (integration / "conftest.py").write_text(INTEGRATION_CONFTEST)
    for name, body in FILES.items():
        (integration / name).write_text("import pytest\n\n" + body)
    unit = tests / "unit"
    unit.mkdir()
    (unit / "test_unit.py").write_text("".join(f"def test_u{n}():\n    pass\n\n" for n in range(20)))
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Collect the suite of fakes in-process, as `pytest --collect-only -q ARGS tests` would."""
    return pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider", *args, "tests")


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    """The test names in the order the run would take them."""
    result = run(pytester, *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    return [line.rsplit("::", 1)[1] for line in result.stdout.lines if "::" in line]


def usage_error(pytester: pytest.Pytester) -> str:
    """What pytest says when collecting the suite is refused as a usage error."""
    result = run(pytester, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    return result.stderr.str()


def integration_part(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith("test_u")]


UNIT = [f"test_u{n}" for n in range(20)]
LIFECYCLE = ["test_shared_1", "test_shared_2", "test_shared_3", "test_down", "test_none", "test_netns", "test_own"]
REVERSE = ["test_shared_3", "test_shared_1", "test_shared_2", "test_down", "test_netns", "test_none", "test_own"]
REVERSE_UNSTAGED = [
    "test_shared_3",
    "test_netns",
    "test_none",
    "test_down",
    "test_shared_1",
    "test_shared_2",
    "test_own",
]


def test_integration_tests_run_in_lab_stages_then_the_unit_tests(suite: pytest.Pytester) -> None:
    assert collected(suite, "-p", "no:randomly") == LIFECYCLE + UNIT


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_randomly_shuffles_the_unit_tests_but_not_the_integration_tests(suite: pytest.Pytester, seed: int) -> None:
    names = collected(suite, "-p", "randomly", f"--randomly-seed={seed}")
    assert names[: len(LIFECYCLE)] == LIFECYCLE
    unit = names[len(LIFECYCLE) :]
    assert sorted(unit) == sorted(UNIT)
    assert unit != UNIT


def test_reverse_collects_the_files_in_reverse_and_keeps_the_stages(suite: pytest.Pytester) -> None:
    assert integration_part(collected(suite, "-p", "no:randomly", "--test-order=reverse")) == REVERSE


def test_reverse_from_the_environment(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGT_TEST_ORDER", "reverse")
    assert integration_part(collected(suite, "-p", "no:randomly")) == REVERSE


def test_reverse_unstaged_is_the_plain_reverse_file_order(suite: pytest.Pytester) -> None:
    names = integration_part(collected(suite, "-p", "no:randomly", "--test-order=reverse-unstaged"))
    assert names == REVERSE_UNSTAGED


def test_an_unknown_order_is_a_usage_error_in_one_line(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGT_TEST_ORDER", "backwards")
    assert "KGT_TEST_ORDER=backwards: not one of lifecycle, reverse, reverse-unstaged" in usage_error(suite)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("@pytest.mark.own_lab\ndef test_x(lab):\n    pass\n", "marked own_lab but uses the shared lab"),
        (
            "@pytest.mark.takes_lab_down\ndef test_x():\n    pass\n",
            "marked takes_lab_down but does not use the shared lab",
        ),
    ],
    ids=["own_lab-with-lab", "takes_lab_down-without-lab"],
)
def test_a_contradictory_declaration_is_a_usage_error(suite: pytest.Pytester, body: str, message: str) -> None:
    (suite.path / "tests" / "integration" / "test_z_bad.py").write_text("import pytest\n\n" + body)
    assert f"tests/integration/test_z_bad.py::test_x: {message}" in usage_error(suite)
