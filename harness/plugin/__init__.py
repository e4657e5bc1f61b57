"""pytest plugin: options, markers, fixtures and reporting over the harness library.

Registered through the ``pytest11`` entry point (this package). Everything here is glue;
clusters, faults and checkers live in the library so the CLI and other tools can use them
too. By job:

- :mod:`~harness.plugin.options`: flags from the option table, markers, session state;
- :mod:`~harness.plugin.collection`: resolving the implementation, ``requires`` skips;
- :mod:`~harness.plugin.external`: which tests skip on an external cluster, and why;
- :mod:`~harness.plugin.fixtures`: ``cluster``, ``cluster_factory``, ``workload``, ...;
- :mod:`~harness.plugin.deadline`: hang protection, a deadline per test phase;
- :mod:`~harness.plugin.upgrade`: the ``upgrade`` fixture (rolling-upgrade rehearsals);
- :mod:`~harness.plugin.regression`: the ``regression`` fixture and ``--repeat``
  (documented bugs reproduced k of n);
- :mod:`~harness.plugin.reporting`: node logs of failures, known server issues as
  xfailed, ``summary.json`` and the metrics table.

pytest collects hooks and fixtures from this module, so they are all imported here.
"""

from __future__ import annotations

from harness.plugin.collection import (
    pytest_collection_modifyitems,
    pytest_report_collectionfinish,
)
from harness.plugin.deadline import (
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)
from harness.plugin.fixtures import (
    ClusterFactory,
    Metrics,
    WorkloadFactory,
    artifacts,
    cluster,
    cluster_factory,
    harness_cluster_pool,
    harness_impl,
    harness_seed,
    harness_state,
    metrics,
    rng,
    workload,
)
from harness.plugin.options import pytest_addoption, pytest_configure, pytest_unconfigure
from harness.plugin.regression import (
    harness_repetition,
    pytest_generate_tests,
    regression,
)
from harness.plugin.reporting import pytest_runtest_makereport
from harness.plugin.state import HarnessState
from harness.plugin.upgrade import Upgrade, upgrade

__all__ = [
    "ClusterFactory",
    "HarnessState",
    "Metrics",
    "Upgrade",
    "WorkloadFactory",
    "artifacts",
    "cluster",
    "cluster_factory",
    "harness_cluster_pool",
    "harness_impl",
    "harness_repetition",
    "harness_seed",
    "harness_state",
    "metrics",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_report_collectionfinish",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_unconfigure",
    "regression",
    "rng",
    "upgrade",
    "workload",
]
