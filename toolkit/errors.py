"""The one exception hierarchy of kgt; the CLI turns these into one line and an exit code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding about an input file: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        prefix = "warning: " if self.severity == "warning" else ""
        path = f" {self.path}:" if self.path else ""
        return f"{where}:{path} {prefix}{self.message}"


class KgtError(Exception):
    """Base of every error kgt reports to a user (never shown as a traceback)."""

    exit_code = 1


class UsageError(KgtError):
    """The command line itself is wrong."""

    exit_code = 2


class TopologyError(KgtError):
    """The topology file is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SecretsError(KgtError):
    """A secrets file is missing, unreadable, or lacks a secret the topology needs."""


class RenderError(KgtError):
    """Rendering or writing the output directory failed."""


class LabError(KgtError):
    """The Docker lab could not be brought up, inspected or torn down."""


class CheckError(KgtError):
    """A check could not be carried out (as opposed to a check that found a fault)."""
