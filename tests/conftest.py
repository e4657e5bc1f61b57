"""Fixtures for the harness's own tests (not the suites users run).

The plugin is loaded in this session too and writes a report; unless ``--report-dir``
says where, it goes to a temporary directory, not to ``reports/``, where ``make run``
left the main job's report (CI archives it after ``make test``). The directory is removed
when everything passed and kept, and named, when something failed (its node logs).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from harness import impl as impls
from harness.impl import Implementation
from harness.plugin.workers import name_group

pytest_plugins = ["pytester"]

SELF_REPORTS = pytest.StashKey[Path]()
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)  # before the plugin reads --report-dir
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--report-dir") is None:
        path = Path(tempfile.mkdtemp(prefix="harness-selftest-reports-"))
        config.stash[SELF_REPORTS] = path
        config.option.report_dir = str(path)


@pytest.hookimpl(trylast=True)  # after the plugin named its shared-cluster groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``xdist_group`` marks of these tests work under ``--dist loadgroup``: xdist 3.8
    names the group in an attribute pytest 9.2 no longer reads, so on its own it would
    spread a group's tests over the workers (the plugin does the same for its groups)."""
    if not config.getoption("loadgroup", False):
        return
    for item in items:
        marks = item.iter_markers("xdist_group")
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks}
        if names:
            name_group(item, "_".join(sorted(names)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[FAILED] = exitstatus != 0


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    path = terminalreporter.config.stash.get(SELF_REPORTS, None)
    if path is not None and terminalreporter.config.stash.get(FAILED, True):
        terminalreporter.write_line(f"the harness's own tests: report and node logs kept in {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    path = config.stash.get(SELF_REPORTS, None)
    if path is not None and not config.stash.get(FAILED, True):
        shutil.rmtree(path, ignore_errors=True)


VERIFIED = ("redis-6.2", "redis-7.0", "valkey-8.0")


@pytest.fixture(params=VERIFIED)
def any_impl(request: pytest.FixtureRequest) -> Implementation:
    """Each verified implementation that is installed here (CI installs all of them)."""
    found = impls.available(request.param)
    if found is None:
        pytest.skip(f"{request.param} is not installed (run scripts/setup-system.sh)")
    return found
