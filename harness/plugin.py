"""pytest plugin: options, markers, fixtures and reporting over the harness library.

Registered through the ``pytest11`` entry point. Everything here is glue; clusters,
faults and checkers live in the library so the CLI and other tools can use them too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import impl as impls
from harness.backends import AVAILABLE, get_backend, resolve_implementation
from harness.cluster import Cluster, ClusterSpec
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.report import (
    METRIC_PREFIX,
    TestResult,
    build_summary,
    metrics_from_properties,
    metrics_table,
    now_iso,
    write_summary,
)
from harness.runs import Run
from harness.workload import ENGINES, Engine, Workload, WorkloadSpec

HARNESS_FIXTURES = {"cluster", "cluster_factory", "harness_impl"}
CLUSTER_MARK_ARGS = {
    "network_faults",
    "proxied",
    "masters",
    "replicas",
    "node_timeout_ms",
    "persistence",
    "server_args",
    "ready_timeout_s",
}


@dataclass
class HarnessState:
    """Per-session state, kept in ``config.stash``."""

    impl_name: str | None
    impl_binary: str | None
    image: str | None
    backend: str
    node_timeout_ms: int
    seed: int
    report_dir: Path
    report_dir_given: bool
    workload_engine: Engine = "redis-py"
    impl: Implementation | None = None
    used: bool = False
    started: str = field(default_factory=now_iso)
    results: dict[str, TestResult] = field(default_factory=dict)

    def implementation(self) -> Implementation:
        if self.impl is None:
            self.impl = resolve_implementation(
                self.impl_name, self.impl_binary, self.image, self.backend
            )
        return self.impl

    def describe(self) -> str:
        what = (
            self.impl.describe() if self.impl else (self.impl_name or self.impl_binary or "default")
        )
        return (
            f"{what}; backend {self.backend}; node timeout {self.node_timeout_ms} ms; "
            f"seed {self.seed}; workload engine {self.workload_engine}"
        )


BACKEND_CAPABILITIES = frozenset({"network_faults"})  # what backends may offer

STATE = pytest.StashKey[HarnessState]()
CLUSTERS = pytest.StashKey[list[Cluster]]()


def _positive_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(
            f"--node-timeout {text!r}: give milliseconds as a whole number, e.g. 2000"
        ) from None
    if not 50 <= value <= 600_000:
        raise pytest.UsageError(f"--node-timeout {value}: use 50..600000 ms")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("redis-cluster-harness", "Redis Cluster harness")
    g.addoption(
        "--impl", metavar="NAME", help="implementation profile to test, e.g. redis-7.0, valkey-8.0"
    )
    g.addoption(
        "--impl-binary", metavar="PATH", help="server executable (or wrapper script) to test"
    )
    g.addoption(
        "--backend",
        default="local",
        metavar="NAME",
        help=f"where nodes run: {', '.join(AVAILABLE)} (default local)",
    )
    g.addoption(
        "--image",
        metavar="NAME:TAG",
        help="docker backend: run this local image (e.g. from `python -m harness image build`) "
        "instead of one built from the binary",
    )
    g.addoption(
        "--node-timeout",
        metavar="MS",
        default="2000",
        help="cluster-node-timeout in ms (default 2000)",
    )
    g.addoption(
        "--seed",
        metavar="N",
        help="seed for randomised choices (default: random, printed in the header)",
    )
    g.addoption("--report-dir", metavar="DIR", help="where summary.json goes (default: reports/)")
    g.addoption(
        "--workload-engine",
        choices=ENGINES,
        default="redis-py",
        help="client of recorded workloads: redis-py's asyncio RedisCluster (default) or "
        "raw, the harness's lean client (several times the rate)",
    )
    parser.addini("harness_report_dir", "default report directory", default="reports")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cluster(masters=3, replicas=1, node_timeout_ms=None, persistence='none', server_args=None): "
        "shape and settings of the `cluster` fixture's cluster",
    )
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip unless the implementation has them "
        "(" + ", ".join(sorted(impls.KNOWN_CAPABILITIES | BACKEND_CAPABILITIES)) + ")",
    )
    seed_opt = config.getoption("--seed")
    try:
        seed = int(seed_opt) if seed_opt is not None else random.SystemRandom().randrange(2**31)
    except ValueError:
        raise pytest.UsageError(f"--seed {seed_opt!r}: give a whole number") from None
    backend = config.getoption("--backend")
    try:
        get_backend(backend)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    report_opt = config.getoption("--report-dir")
    report_dir = Path(report_opt or config.getini("harness_report_dir"))
    if not report_dir.is_absolute():
        report_dir = Path(config.invocation_params.dir) / report_dir
    state = HarnessState(
        impl_name=config.getoption("--impl"),
        impl_binary=config.getoption("--impl-binary"),
        image=config.getoption("--image"),
        backend=backend,
        node_timeout_ms=_positive_ms(config.getoption("--node-timeout")),
        seed=seed,
        report_dir=report_dir,
        report_dir_given=report_opt is not None,
        workload_engine=config.getoption("--workload-engine"),
    )
    config.stash[STATE] = state
    config.pluginmanager.register(_Reporter(state), "redis-cluster-harness-reporter")
    if state.impl_name or state.impl_binary or state.image:
        try:
            state.implementation()  # bad --impl / --impl-binary: fail now, in one line
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    users = [i for i in items if HARNESS_FIXTURES & set(getattr(i, "fixturenames", ()))]
    if not users:
        return
    state.used = True
    try:
        impl = state.implementation()
        if state.backend == "docker":
            from harness.images import preflight

            preflight(impl)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    backend_cls = get_backend(state.backend)
    for item in users:
        for mark in item.iter_markers("requires"):
            unknown = [
                c for c in mark.args if c not in impls.KNOWN_CAPABILITIES | BACKEND_CAPABILITIES
            ]
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: unknown capability {unknown[0]!r} in @pytest.mark.requires"
                )
            missing = [c for c in mark.args if c not in BACKEND_CAPABILITIES and not impl.has(c)]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"{impl.name} lacks {', '.join(missing)}"))
            for cap in (c for c in mark.args if c in BACKEND_CAPABILITIES):
                reason = backend_cls.unsupported(cap, impl)
                if reason is not None:
                    item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    state = config.stash[STATE]
    return f"redis-cluster-harness: {state.describe()}" if state.used else None


# -- fixtures ------------------------------------------------------------------------


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
def workload(harness_state: HarnessState) -> WorkloadFactory:
    """Factory: ``workload(cluster, kind="set", clients=4, rate=600, ...)`` builds a
    :class:`~harness.workload.Workload` seeded from ``--seed``, with the client engine of
    ``--workload-engine``; keyword arguments are :class:`~harness.workload.WorkloadSpec`
    fields."""

    def make(cluster: Cluster, **spec: Any) -> Workload:
        spec.setdefault("seed", harness_state.seed)
        spec.setdefault("engine", harness_state.workload_engine)
        return Workload(cluster, WorkloadSpec(**spec))

    return make


@pytest.fixture
def rng(harness_seed: int, request: pytest.FixtureRequest) -> random.Random:
    """A random generator seeded from ``--seed`` and the test id: reproducible per test."""
    return random.Random(f"{harness_seed}:{request.node.nodeid}")


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
    path = harness_state.report_dir / "artifacts" / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
    path.mkdir(parents=True, exist_ok=True)
    return path


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def cluster_factory(
    request: pytest.FixtureRequest, harness_state: HarnessState, harness_impl: Implementation
) -> Iterator[ClusterFactory]:
    """Start ready clusters on demand; all are torn down after the test.

    Keyword arguments are those of :class:`~harness.cluster.ClusterSpec` plus ``ports``.
    """
    clusters: list[Cluster] = []
    request.node.stash[CLUSTERS] = clusters

    def make(ports: list[int] | None = None, **kwargs: Any) -> Cluster:
        unknown = set(kwargs) - CLUSTER_MARK_ARGS
        if unknown:
            raise TypeError(
                f"unknown cluster setting(s) {sorted(unknown)}; use {sorted(CLUSTER_MARK_ARGS)}"
            )
        kwargs.setdefault("node_timeout_ms", harness_state.node_timeout_ms)
        if kwargs.get("node_timeout_ms") is None:
            kwargs["node_timeout_ms"] = harness_state.node_timeout_ms
        if isinstance(kwargs.get("server_args"), dict):
            kwargs["server_args"] = tuple(kwargs["server_args"].items())
        try:
            spec = ClusterSpec(**kwargs)
            c = Cluster.start(harness_impl, spec, backend=harness_state.backend, ports=ports)
        except HarnessError as exc:  # the message says it all; a traceback through us does not help
            raise pytest.fail.Exception(f"{type(exc).__name__}: {exc}", pytrace=False) from None
        clusters.append(c)
        if len(clusters) == 1:
            Metrics(request.node).record("bringup_ms", c.bringup_ms)
        return c

    yield make
    for c in clusters:
        c.close()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, cluster_factory: ClusterFactory) -> Cluster:
    """A ready cluster shaped by ``@pytest.mark.cluster(...)`` (default 3 masters × 1 replica)."""
    kwargs: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("cluster"))):  # closest mark wins
        if mark.args:
            raise TypeError(
                "@pytest.mark.cluster takes keyword arguments only, e.g. cluster(masters=3)"
            )
        kwargs.update(mark.kwargs)
    if any("network_faults" in m.args for m in request.node.iter_markers("requires")):
        kwargs.setdefault("network_faults", True)
    return cluster_factory(**kwargs)


# -- reporting -----------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and call.excinfo is not None:
        impl = item.config.stash[STATE].impl
        ref = None
        if impl is not None:
            logs = "\n".join(
                n.log_text(3000) for c in item.stash.get(CLUSTERS, []) for n in c.nodes
            )
            ref = impl.profile.known_issue(str(call.excinfo.value), logs)
        if ref is not None:  # the server's known bug, not a harness failure
            report.outcome = "skipped"
            report.wasxfail = f"known server issue {ref}"
    clusters = item.stash.get(CLUSTERS, [])
    if report.failed and clusters:
        state = item.config.stash[STATE]
        logdir = state.report_dir / "logs" / re.sub(r"[^\w.-]+", "_", item.nodeid)
        for ci, c in enumerate(clusters):
            for n in c.nodes:
                # a short tail, so the end survives in truncated CI output; the whole log
                # is written next to the report
                text = n.log_text(3000)
                path = logdir / f"cluster{ci}-{n.name}-{n.port}.log"
                try:
                    logdir.mkdir(parents=True, exist_ok=True)
                    path.write_text(n.log_text(10_000_000))
                    text += f"\n[whole log: {path}]"
                except OSError:
                    pass
                report.sections.append((f"node {n.name} {n.addr} log (tail)", text))
            events = "\n".join(f"{e.t_ns} {e.action} {e.node} {e.detail}" for e in c.events)
            report.sections.append((f"cluster {ci} events", events))
    return report


class _Reporter:
    """Collects outcomes and metrics of every test; writes summary.json at the end."""

    def __init__(self, state: HarnessState) -> None:
        self.state = state
        self.summary_path: Path | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        res = self.state.results.setdefault(report.nodeid, TestResult(report.nodeid))
        res.duration_s += report.duration
        res.metrics.update(metrics_from_properties(report.user_properties))
        if report.when == "call":
            if hasattr(report, "wasxfail"):
                res.outcome = "xfailed" if report.skipped else "xpassed"
                res.message = str(report.wasxfail)
            else:
                res.outcome = report.outcome
            if report.failed:
                res.message = _short_message(report)
        elif report.skipped and report.when == "setup":
            res.outcome = "skipped"
            res.message = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        elif report.failed:
            res.outcome = "error"
            res.message = _short_message(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        if hasattr(session.config, "workerinput") or not (state.used or state.report_dir_given):
            return
        impl = state.impl
        meta = {
            "implementation": None
            if impl is None
            else {
                "name": impl.name,
                "flavor": impl.flavor,
                "version": impl.version_str,
                "binary": impl.binary,
            },
            "backend": state.backend,
            "seed": state.seed,
            "workload_engine": state.workload_engine,
            "node_timeout_ms": state.node_timeout_ms,
            "started": state.started,
            "finished": now_iso(),
            "exit_status": int(exitstatus),
        }
        self.summary_path = write_summary(
            state.report_dir, build_summary(meta, state.results.values())
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = metrics_table(self.state.results.values())
        if lines:
            terminalreporter.section("redis-cluster-harness metrics")
            for line in lines:
                terminalreporter.write_line(line)
        if self.summary_path is not None:
            terminalreporter.write_line(
                f"redis-cluster-harness: summary written to {self.summary_path}"
            )


def _short_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    msg = getattr(crash, "message", None) or str(report.longrepr)
    return msg.splitlines()[0][:300] if msg else ""


def pytest_unconfigure(config: pytest.Config) -> None:
    if Run._current is not None:
        Run._current.close()
