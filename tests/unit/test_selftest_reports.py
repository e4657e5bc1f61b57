"""The harness's own tests leave ``reports/`` to the main job (``make run && make test``:
CI archives the suites' report, not this session's)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from harness.plugin.state import STATE

ROOT = Path(__file__).resolve().parents[2]


def test_this_session_reports_to_a_temporary_directory(pytestconfig: pytest.Config) -> None:
    if pytestconfig.getoption("--report-dir") != str(pytestconfig.stash[STATE].report_dir):
        pytest.skip("--report-dir was given on the command line")
    where = pytestconfig.stash[STATE].report_dir
    assert where.is_relative_to(Path(tempfile.gettempdir())), where
    assert not where.is_relative_to(ROOT), where
    assert where != Path(pytestconfig.invocation_params.dir) / "reports"
