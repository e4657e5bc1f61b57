"""Fixtures for the harness's own tests (not the suites users run)."""

from __future__ import annotations

import pytest

from harness import impl as impls
from harness.impl import Implementation

pytest_plugins = ["pytester"]

VERIFIED = ("redis-6.2", "redis-7.0", "valkey-8.0")


@pytest.fixture(params=VERIFIED)
def any_impl(request: pytest.FixtureRequest) -> Implementation:
    """Each verified implementation that is installed here (CI installs all of them)."""
    found = impls.available(request.param)
    if found is None:
        pytest.skip(f"{request.param} is not installed (run scripts/setup-system.sh)")
    return found
