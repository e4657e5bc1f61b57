"""The plugin's fixtures: the implementation and seed of the run, clusters (shaped by
``@pytest.mark.cluster``), workloads, metrics, seeded randomness and artifact folders."""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.attach import attach
from harness.backends.external import check_options, discover
from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.htmlreport.persist import persist
from harness.impl import Implementation
from harness.options import MARKER_FIELDS
from harness.plugin import advice
from harness.plugin.external import mismatch
from harness.plugin.reporting import CLUSTERS
from harness.plugin.shared import ClusterPool, mark_settings, shares
from harness.plugin.state import STATE, HarnessState
from harness.plugin.workers import plain_nodeid
from harness.report import METRIC_PREFIX, safe_name
from harness.security import tls_unsupported
from harness.spec import ClusterSpec
from harness.workload import Workload, WorkloadSpec

CLUSTER_MARK_ARGS = MARKER_FIELDS  # keywords of @pytest.mark.cluster and cluster_factory


@pytest.fixture(scope="session")
def harness_state(pytestconfig: pytest.Config) -> HarnessState:
    return pytestconfig.stash[STATE]


@pytest.fixture(scope="session")
def harness_impl(harness_state: HarnessState) -> Implementation:
    """The implementation under test (from ``--impl`` / ``--impl-binary``)."""
    return harness_state.implementation()


@pytest.fixture(scope="session")
def harness_seed(harness_state: HarnessState) -> int:
    """The run's seed (``--seed``); same seed, same randomised choices."""
    return harness_state.seed


WorkloadFactory = Callable[..., Workload]


@pytest.fixture
def workload(
    harness_state: HarnessState, cluster_factory: ClusterFactory
) -> Iterator[WorkloadFactory]:
    """Factory: ``workload(cluster, kind="set", clients=4, rate=600, ...)`` builds a
    :class:`~harness.workload.Workload` seeded from ``--seed``, with the client engine of
    ``--workload-engine``, its keys under the run's prefix; keyword arguments are
    :class:`~harness.workload.WorkloadSpec` fields. On a cluster the harness does not own
    the keys are deleted after the test, whatever its outcome."""
    made: list[Workload] = []

    def make(cluster: Cluster, **spec: Any) -> Workload:
        spec.setdefault("seed", harness_state.seed)
        spec.setdefault("engine", harness_state.workload_engine)
        spec.setdefault("prefix", harness_state.key_prefix)
        made.append(Workload(cluster, WorkloadSpec(**spec)))
        return made[-1]

    yield make  # torn down before cluster_factory: the clusters still serve
    for wl in made:  # a shared or foreign cluster outlives the test: no load stays on it
        with contextlib.suppress(HarnessError):  # the test has seen it already
            wl.stop()
        if not wl.cluster.backend.owns_cluster:
            wl.remove_keys()


@pytest.fixture
def rng(harness_seed: int, request: pytest.FixtureRequest) -> random.Random:
    """A random generator seeded from ``--seed`` and the test id: reproducible per test."""
    return random.Random(f"{harness_seed}:{plain_nodeid(request.node.nodeid)}")


class Metrics:
    """Records numbers about a test run into summary.json, JUnit and the terminal table."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item

    def record(self, name: str, value: float | int | str) -> None:
        if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            raise ValueError(f"metric name {name!r}: use letters, digits, '_' and '.'")
        key = METRIC_PREFIX + name
        props = self._item.user_properties
        props[:] = [(k, v) for k, v in props if k != key]
        props.append((key, round(value, 3) if isinstance(value, float) else value))

    def __setitem__(self, name: str, value: float | int | str) -> None:
        self.record(name, value)


@pytest.fixture
def metrics(request: pytest.FixtureRequest) -> Metrics:
    """``metrics.record("failover_ms", 1234)``: shown in summary.json, JUnit, terminal."""
    return Metrics(request.node)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, harness_state: HarnessState) -> Path:
    """This test's directory in the report (histories, schedules): kept with summary.json."""
    path = artifact_dir(harness_state, request.node.nodeid)
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact_dir(state: HarnessState, nodeid: str) -> Path:
    return state.report_dir / "artifacts" / safe_name(plain_nodeid(nodeid))


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def cluster_factory(
    request: pytest.FixtureRequest, harness_state: HarnessState, harness_impl: Implementation
) -> Iterator[ClusterFactory]:
    """Start ready clusters on demand; all are torn down after the test.

    Keyword arguments are those of :class:`~harness.spec.ClusterSpec` plus ``ports`` and
    ``impl`` (another implementation than the run's: the upgrade suite's).
    """
    clusters: list[Cluster] = []  # closed after the test
    request.node.stash[CLUSTERS] = []  # these and a shared one: their logs go in a report

    def make(
        ports: list[int] | None = None, impl: Implementation | None = None, **kwargs: Any
    ) -> Cluster:
        use = impl or harness_impl
        settings = _settings(harness_state, use, kwargs)
        c = _start(request, harness_state, use, settings, ports)
        clusters.append(c)
        request.node.stash[CLUSTERS].append(c)
        if len(clusters) == 1 and c.backend.owns_cluster:
            Metrics(request.node).record("bringup_ms", c.bringup_ms)
        return c

    since = time.monotonic_ns()
    yield make
    try:  # what the report page shows of the clusters, while their nodes still exist
        if request.node.stash[CLUSTERS]:
            persist(
                artifact_dir(harness_state, request.node.nodeid),
                request.node.stash[CLUSTERS],
                since,
            )
    except Exception as exc:  # the page lacks a section; the teardown goes on
        request.node.warn(pytest.PytestWarning(f"report page data not written: {exc}"))
    for c in clusters:
        c.close()


def _settings(state: HarnessState, impl: Implementation, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The test's cluster settings with the session's defaults filled in (or a skip when
    the implementation cannot have them)."""
    unknown = set(kwargs) - CLUSTER_MARK_ARGS
    if unknown:
        raise TypeError(
            f"unknown cluster setting(s) {sorted(unknown)}; use {sorted(CLUSTER_MARK_ARGS)}"
        )
    kwargs = dict(kwargs)
    if kwargs.get("node_timeout_ms") is None:
        kwargs["node_timeout_ms"] = state.node_timeout_ms
    if "auth" not in kwargs and "password" not in kwargs:  # a marker's settings win
        kwargs["auth"], kwargs["password"] = state.auth, state.password
    kwargs.setdefault("tls", state.tls)
    if kwargs["tls"] and impl.image is None and state.backend != "external":
        reason = tls_unsupported(impl.binary)
        if reason is not None:
            pytest.skip(reason)
    if isinstance(kwargs.get("server_args"), dict):
        kwargs["server_args"] = tuple(kwargs["server_args"].items())
    if state.server_args:  # the run's settings first, the test's own after them
        kwargs["server_args"] = (*state.server_args, *kwargs.get("server_args", ()))
    return kwargs


def _start(
    request: pytest.FixtureRequest,
    state: HarnessState,
    impl: Implementation,
    settings: dict[str, Any],
    ports: list[int] | None = None,
) -> Cluster:
    try:
        if state.backend == "external":
            c = _attach(request, state, impl, settings)
        else:
            spec = ClusterSpec(**settings)
            c = Cluster.start(impl, spec, backend=state.backend, ports=ports)
    except HarnessError as exc:  # the message says it all; a traceback through us does not help
        raise pytest.fail.Exception(f"{type(exc).__name__}: {exc}", pytrace=False) from None
    advice.record(request.node, c)  # what the documents advise about its shape
    return c


def _attach(
    request: pytest.FixtureRequest,
    state: HarnessState,
    impl: Implementation,
    settings: dict[str, Any],
) -> Cluster:
    """The external cluster, or a skip when it is not the cluster the test asks for."""
    named = check_options(state.backend, state.nodes)
    c = attach(named, impl, security=state.access)
    any_shape = request.node.get_closest_marker("any_shape") is not None
    reason = mismatch(settings, c.discovery or discover(named, state.access), any_shape)
    if reason is not None:
        c.close()
        pytest.skip(reason)
    return c


@pytest.fixture(scope="session")
def harness_cluster_pool(harness_state: HarnessState) -> Iterator[ClusterPool]:
    """The clusters ``shares_cluster`` tests take turns on (one pool per process)."""
    pool = ClusterPool()
    harness_state.pool = pool
    yield pool
    pool.close()


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    harness_state: HarnessState,
    harness_impl: Implementation,
    cluster_factory: ClusterFactory,
) -> Iterator[Cluster]:
    """A ready cluster shaped by ``@pytest.mark.cluster(...)`` (default 3 masters × 1
    replica); a test marked ``shares_cluster`` gets one it shares with other such tests
    (:mod:`harness.plugin.shared`) unless ``--no-shared-clusters``."""
    kwargs = mark_settings(request.node)
    if not (
        shares(request.node)
        and harness_state.shared_clusters
        and harness_state.backend != "external"
    ):
        yield cluster_factory(**kwargs)
        return
    pool: ClusterPool = request.getfixturevalue("harness_cluster_pool")
    settings = _settings(harness_state, harness_impl, kwargs)
    nodeid = plain_nodeid(request.node.nodeid)

    def start() -> Cluster:  # the test that starts the shared cluster reports its bring-up
        started = _start(request, harness_state, harness_impl, settings)
        Metrics(request.node).record("bringup_ms", started.bringup_ms)
        return started

    c = pool.get(settings, start, nodeid)
    request.node.stash[CLUSTERS].append(c)  # its logs go in a failure's report
    yield c
    broken = pool.release(settings, nodeid)
    if broken is not None:
        request.node.warn(pytest.PytestWarning(broken))
