"""Where the suites and the shipped implementation profiles are.

A wheel carries them inside the package (``harness/suites``, ``harness/fixtures``); a
checkout (``pip install -e .`` or ``PYTHONPATH``) has them at its top level (``suites/``,
``fixtures/``), which is what the wheel is built from: one copy, two layouts.

Real paths next to this package rather than :mod:`importlib.resources` lookups: pytest
collects the suites and tomllib reads the profiles from files, and the package's own
location decides, never a mapping another checkout's editable install put on the import
path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

PACKAGE = Path(__file__).resolve().parent


def data_dir(name: Literal["suites", "fixtures"]) -> Path:
    """The directory ``name``: the installed package's copy, else the checkout's."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
