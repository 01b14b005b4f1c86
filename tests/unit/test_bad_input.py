"""The bad-input corpus: every case fails with exit 1, FILE:LINE: and a message, no output.

Each `tests/bad_input/NN-name.yaml` starts with `# expect: LINE: fragment` (LINE is `-`
when no line applies). A case needing secrets names them in `# secrets: <inline yaml>`
or ships `NN-name.secrets.yaml`; every other case gets a complete fake secrets file, so
only the intended problem can show.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from builders import ROOT, Result, fake_secret_values

from toolkit import secretstore

CORPUS = Path(__file__).resolve().parents[1] / "bad_input"
CASES = sorted(p for p in CORPUS.glob("[0-9][0-9]-*.yaml") if not p.name.endswith(".secrets.yaml"))
EXPECT = re.compile(r"^# expect: (?P<line>\d+|-): (?P<fragment>.+)$")


def expectation(case: Path) -> tuple[str, str, str | None]:
    """(line, fragment, inline secrets yaml or None) from the case's leading comments."""
    lines = case.read_text().splitlines()
    match = EXPECT.match(lines[0])
    assert match, f"{case.name}: first line must be '# expect: LINE: fragment'"
    secrets = next((line[len("# secrets: ") :] for line in lines[1:3] if line.startswith("# secrets: ")), None)
    return match.group("line"), match.group("fragment"), secrets


def test_corpus_is_large_enough_and_well_formed() -> None:
    assert len(CASES) >= 25
    numbers = [case.name[:2] for case in CASES]
    assert len(numbers) == len(set(numbers)), "two cases share a number"
    for case in CASES:
        expectation(case)


@dataclass
class Run:
    """One case run through `kgt render`, with the paths it was given."""

    case: Path
    secrets: Path
    secrets_given: bool
    out: Path
    result: Result


def run_case(case: Path, tmp: Path) -> Run:
    _, _, inline = expectation(case)
    sibling = case.with_name(case.stem + ".secrets.yaml")
    if inline is not None:
        secrets = tmp / "secrets.yaml"
        secrets.write_text(yaml.safe_dump(yaml.safe_load(inline)))
    elif sibling.exists():
        secrets = sibling
    else:
        secrets = tmp / "secrets.yaml"
        secretstore.write(secrets, fake_secret_values())
    out = tmp / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "render", str(case), "-o", str(out), "--secrets", str(secrets)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(
        case, secrets, inline is not None or sibling.exists(), out, Result(proc.returncode, proc.stdout, proc.stderr)
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Run]:
    """Every case run once, as subprocesses in parallel (each is a fresh interpreter)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {case: pool.submit(run_case, case, tmp_path_factory.mktemp(case.stem)) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_input(case: Path, runs: dict[Path, Run]) -> None:
    line, fragment, _ = expectation(case)
    run = runs[case]
    result = run.result

    assert result.code == 1, result.err
    assert not run.out.exists(), "a failed render left an output directory"
    assert "Traceback" not in result.err and result.out == ""
    files = [str(case)]
    if run.secrets_given:
        files.append(str(run.secrets))  # a problem of the secrets file is located there
    where = "|".join(re.escape(f) for f in files)
    problems = result.err.splitlines()
    assert problems, "nothing on stderr"
    for problem in problems:
        assert re.match(rf"^(?:{where})(?::\d+)?: ", problem), f"not FILE[:LINE]: {problem}"
    wanted = rf"^(?:{where}):{line}: " if line != "-" else rf"^(?:{where}): "
    hits = [p for p in problems if re.match(wanted, p) and fragment in p]
    assert hits, f"expected line {line} with {fragment!r} in:\n{result.err}"


def test_usage_errors_exit_2(tmp_path: Path, kgt_process) -> None:  # type: ignore[no-untyped-def]
    case = CASES[0]
    result = kgt_process("render", case)  # -o is required
    assert result.code == 2
    assert "Missing option" in result.err and "Traceback" not in result.err
    assert kgt_process("render", case, "-o", tmp_path / "out", "--bogus").code == 2
    assert kgt_process("render", tmp_path, "-o", tmp_path / "out").code == 2  # a directory, not a file
    assert not (tmp_path / "out").exists()


def _topology_with(tmp_path: Path, third_line: bytes) -> Path:
    """A topology whose third line holds `third_line` (the first two are fine)."""
    path = tmp_path / "t.yaml"
    path.write_bytes(b"name: x\nregions:\n  - name: " + third_line + b"\n")
    return path


@pytest.mark.parametrize("command", [("validate",), ("render", "-o", "out"), ("analyze",)])
def test_not_utf8_is_one_line_with_its_line_number(tmp_path: Path, kgt_process, command) -> None:  # type: ignore[no-untyped-def]
    path = _topology_with(tmp_path, b"r\xe9gion")  # Latin-1, not UTF-8
    result = kgt_process(command[0], path, *command[1:], cwd=tmp_path)
    assert result.code == 1, result
    assert result.out == "" and "Traceback" not in result.err
    assert result.err == f"{path}:3: not UTF-8 text: byte 0xe9 in column 12 (save the file as UTF-8)\n"
    assert "codec" not in result.err
    assert not (tmp_path / "out").exists()


def test_not_utf8_is_one_unknown_line_for_a_probe_and_a_check(tmp_path: Path, kgt_process) -> None:  # type: ignore[no-untyped-def]
    path = _topology_with(tmp_path, b"\xff\xfe")
    probe = kgt_process("probe", "cluster", path)
    assert probe.code == 3 and "Traceback" not in probe.err
    assert (
        probe.out
        == f"KGT CLUSTER UNKNOWN - {path}:3: not UTF-8 text: byte 0xff in column 11 (save the file as UTF-8)\n"
    )
    check = kgt_process("check", "quorum", path)
    assert check.code == 3 and check.out == ""
    assert check.err == f"kgt: UNKNOWN: {path}:3: not UTF-8 text: byte 0xff in column 11 (save the file as UTF-8)\n"


def test_a_control_character_is_one_line_with_its_line_number(tmp_path: Path, kgt) -> None:  # type: ignore[no-untyped-def]
    path = _topology_with(tmp_path, b"r1\x00")
    result = kgt("validate", path)
    assert result.code == 1 and result.out == ""
    assert result.err == f"{path}:3: character U+0000 is not allowed in YAML (a control character)\n"
