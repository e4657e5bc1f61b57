"""Repository-level pytest configuration.

The harness plugin itself is loaded through its ``pytest11`` entry point (``pip install
-e .``); this file only makes a missing installation obvious instead of a wall of
"fixture 'cluster' not found" errors.
"""

from __future__ import annotations

import pytest

collect_ignore = ["reports", "bench", ".venv", "examples"]  # examples: projects of their own


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("redis_cluster_harness"):
        raise pytest.UsageError(
            "the redis-cluster-harness plugin is not installed in this Python; run `make setup` "
            "(or `pip install -e .`) and use .venv/bin/python"
        )
