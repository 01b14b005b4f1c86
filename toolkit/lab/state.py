"""Where a lab keeps its files: rendered configs, the compose file, keys and timings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import LabError

DEFAULT_DIR = Path(".kgt-lab")


@dataclass(frozen=True)
class LabState:
    """The lab directory of one topology."""

    path: Path

    @property
    def rendered(self) -> Path:
        """The rendered configs mounted into the containers."""
        return self.path / "rendered"

    @property
    def compose_file(self) -> Path:
        """The compose file."""
        return self.path / "compose.yml"

    @property
    def info_file(self) -> Path:
        """Which topology and secrets the lab was booted from."""
        return self.path / "lab.json"

    @property
    def project(self) -> str:
        """The compose project name."""
        return str(self.info().get("project", "kgt"))

    def info(self) -> dict[str, Any]:
        """lab.json, or {} before the first `lab up`."""
        try:
            data = json.loads(self.info_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def require(self) -> dict[str, Any]:
        """lab.json, or a LabError saying no lab was booted from this directory."""
        info = self.info()
        if not info:
            raise LabError(f"{self.path}: no lab here (run `kgt lab up TOPOLOGY --lab-dir {self.path}` first)")
        return info

    def save(self, **values: Any) -> None:
        """Merge values into lab.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.info_file.write_text(json.dumps({**self.info(), **values}, indent=2, sort_keys=True) + "\n")

    def save_timings(self, timings: dict[str, float]) -> None:
        """Record how long each step of the last `lab up` took, in boot order."""
        self.save(timings=[[step, seconds] for step, seconds in timings.items()])
