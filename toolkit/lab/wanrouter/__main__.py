"""Entry point: ``python3 -m toolkit.lab.wanrouter ...`` or ``python3 path/to/wanrouter ...``.

Run as a folder (the package copied on its own, or ``python3 -I -S``), Python puts the
folder itself first on ``sys.path`` and runs this file outside any package; the folder
above it then takes that place, so the package imports under its own folder name and
none of its modules can shadow a standard-library one.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def _package() -> str:
    if __package__:
        return __package__
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    return here.name


if __name__ == "__main__":
    sys.exit(importlib.import_module(f"{_package()}.cli").main())
