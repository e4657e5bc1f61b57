"""The plugin's options and markers: flags generated from the option table
(:mod:`harness.options`), read into the session's :class:`HarnessState`."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness import impl as impls
from harness import options
from harness.backends import get_backend
from harness.backends.access import security_for
from harness.backends.external import check_options
from harness.errors import HarnessError
from harness.plugin import progress, workers
from harness.plugin.collection import CAPABILITIES
from harness.plugin.regression import Verdicts
from harness.plugin.reporting import Reporter
from harness.plugin.state import STATE, HarnessState
from harness.runs import Run


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("redis-cluster-harness", "Redis Cluster harness")
    for opt in options.for_layer("pytest"):  # read as text, checked in pytest_configure
        if opt.switch:
            g.addoption(opt.flag, action="store_true", default=None, help=opt.help_text)
        else:
            g.addoption(
                opt.flag,
                metavar=opt.metavar_text,
                help=opt.help_text,
                action="append" if opt.repeat else "store",
            )
    parser.addini("harness_report_dir", "default report directory", default="reports")


def _cluster_marker_doc() -> str:
    """``cluster(masters=3, ..., node_timeout_ms=<--node-timeout>, ...)``, from the table."""
    args = [
        f"{o.name}=<{o.flag}>" if "pytest" in o.layers else f"{o.name}={o.default!r}"
        for o in options.for_layer("marker")
    ]
    return f"cluster({', '.join(args)}): shape and settings of the `cluster` fixture's cluster"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _cluster_marker_doc())
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip unless the implementation has them "
        "(" + ", ".join(sorted(CAPABILITIES)) + ")",
    )
    config.addinivalue_line(
        "markers",
        "destructive(what): the test changes the cluster (kills, pauses, reconfigures, "
        "writes keys outside the run's prefix); on an external cluster it runs only "
        "with --allow-destructive",
    )
    config.addinivalue_line(
        "markers",
        "whole_keyspace(what): the test counts keys it did not write (DBSIZE, "
        "COUNTKEYSINSLOT); it never runs on an external cluster",
    )
    config.addinivalue_line(
        "markers",
        "shares_cluster: the test leaves the cluster as it found it (no fault, no topology "
        "change; keys are flushed between tests), so it takes turns with other such tests "
        "on one cluster of its shape",
    )
    config.addinivalue_line(
        "markers",
        "any_shape: the test holds on a cluster of any shape; its cluster(...) mark only "
        "picks what the harness starts (an external cluster need not match it)",
    )
    config.addinivalue_line(
        "markers",
        "regression(bug): the test is the scenario of a documented bug (a "
        "harness.regressions.Bug); its `regression` fixture records the outcome, judged "
        "against the profile's expectation; --repeat N runs it N times",
    )
    config.addinivalue_line(
        "markers",
        "deadline(seconds): a fixed limit per test phase instead of the one derived from "
        "the node timeout and the test's waits (0: none; see harness.deadline)",
    )
    try:
        given = {o.name: config.getoption(o.flag) for o in options.for_layer("pytest")}
        values = options.from_text("pytest", given)
        get_backend(values["backend"])
        check_options(values["backend"], values["nodes"])
        access = security_for(values)
        impls.use_profiles(values["profiles"])
    except HarnessError as exc:
        raise pytest.UsageError(*str(exc).splitlines()) from None  # an ERROR: line each
    seed = values["seed"]
    report_dir = Path(values["report_dir"] or config.getini("harness_report_dir"))
    if not report_dir.is_absolute():
        report_dir = Path(config.invocation_params.dir) / report_dir
    state = HarnessState(
        impl_name=values["impl"],
        impl_binary=values["impl_binary"],
        image=values["image"],
        backend=values["backend"],
        node_timeout_ms=values["node_timeout_ms"],
        seed=_seed(config, seed),
        report_dir=report_dir,
        report_dir_given=values["report_dir"] is not None,
        workload_engine=values["workload_engine"],
        nodes=values["nodes"],
        allow_destructive=values["allow_destructive"],
        auth=values["auth"],
        password=values["password"],
        tls=values["tls"],
        access=access,
        shared_clusters=not values["no_shared_clusters"],
        server_args=values["server_args"],
        upgrade={k: v for k, v in values.items() if k.startswith("upgrade_") or k == "rollback"},
        repeat=values["repeat"],
    )
    config.stash[STATE] = state
    workers.register(config)
    config.pluginmanager.register(Reporter(state), "redis-cluster-harness-reporter")
    config.pluginmanager.register(Verdicts(), "redis-cluster-harness-regressions")
    progress.register(config, values["progress"])
    if state.impl_name or state.impl_binary or state.image:
        try:
            state.implementation()  # bad --impl / --impl-binary: fail now, in one line
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


def _seed(config: pytest.Config, given: int | None) -> int:
    """``--seed``, else the one the xdist controller drew, else a new one."""
    if given is not None:
        return given
    drawn = workers.seed_from_controller(config)
    return random.SystemRandom().randrange(2**31) if drawn is None else drawn


def pytest_unconfigure(config: pytest.Config) -> None:
    progress.unregister(config)
    impls.use_profiles(None, check=False)  # an in-process pytest leaves no profiles behind
    if Run._current is not None:
        Run._current.close()
