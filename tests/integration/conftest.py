"""Fixtures for the integration tests that run the harness in subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A :class:`Sandbox` in ``tmp_path``; afterwards, whatever of it still runs is killed
    (never let one test's leak outlive it, or spill into the next)."""
    box = Sandbox.create(tmp_path)
    yield box
    box.kill_leftovers()
