"""Fixtures for the harness's own tests (not the suites users run)."""

from __future__ import annotations

import pytest

from harness import impl as impls
from harness.errors import HarnessError
from harness.impl import Implementation

pytest_plugins = ["pytester"]

VERIFIED = ("redis-6.2", "redis-7.0", "valkey-8.0")


def installed(name: str) -> Implementation | None:
    try:
        return impls.from_name(name)
    except HarnessError:
        return None


@pytest.fixture(params=VERIFIED)
def any_impl(request: pytest.FixtureRequest) -> Implementation:
    """Each verified implementation that is installed here (CI installs all of them)."""
    found = installed(request.param)
    if found is None:
        pytest.skip(f"{request.param} is not installed (run scripts/setup-system.sh)")
    return found
