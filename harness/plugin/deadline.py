"""Hang protection in the plugin: a :class:`~harness.deadline.Watchdog` around each phase
(setup, call, teardown) of a test that starts clusters.

A phase gets the deadline derived from its node timeout and its own waits
(:mod:`harness.deadline`); ``@pytest.mark.deadline(seconds)`` or ``--test-deadline``
make it a fixed limit instead, 0 turns it off. Tests without the cluster fixtures have
no node timeout to derive one from and run unguarded unless given a fixed deadline.
When it fires, the phase fails with the states of the test's nodes, its teardown (the
cluster fixtures') kills the cluster, and the run goes on with the next test.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import pytest

from harness.cluster import Cluster
from harness.deadline import Deadline, Watchdog, node_states
from harness.option import OptionError
from harness.options import OPTION
from harness.plugin.reporting import CLUSTERS
from harness.plugin.state import STATE
from harness.plugin.workers import plain_nodeid

OPTION_NAME = "test_deadline"
#: the fixed deadline of a test (None: derived), read once, at its setup
FIXED = pytest.StashKey[float | None]()


def _fixed(item: pytest.Item) -> float | None:
    """The fixed deadline of ``item`` (marker, else option; 0 = off) or None: derive it."""
    opt = OPTION[OPTION_NAME]
    mark = item.get_closest_marker("deadline")
    if mark is not None:
        value: Any = mark.args[0] if mark.args else mark.kwargs.get("seconds")
        try:
            opt.check(value)
            hint = None
        except OptionError as exc:
            hint = exc.hint
        if hint is not None:  # outside the handler: one line, no chained traceback
            pytest.fail(f"@pytest.mark.deadline({value!r}): {hint}", pytrace=False)
        return float(value)  # checked: a number
    text = item.config.getoption(opt.flag)
    return None if text is None else float(opt.parse(str(text)))  # checked at configure


def _node_timeout_s(item: pytest.Item) -> float:
    """The longest node timeout the test's clusters run (or will run) with."""
    ms = [item.config.stash[STATE].node_timeout_ms]
    ms += [m.kwargs.get("node_timeout_ms") or 0 for m in item.iter_markers("cluster")]
    ms += [c.spec.node_timeout_ms for c in _clusters(item)]
    return max(ms) / 1000


def _clusters(item: pytest.Item) -> list[Cluster]:
    return item.stash.get(CLUSTERS, [])


def _watchdog(item: pytest.Item, phase: str) -> Watchdog | None:
    if phase == "setup":
        item.stash[FIXED] = _fixed(item)  # a bad marker fails the setup, once
    elif FIXED not in item.stash:
        return None
    fixed = item.stash[FIXED]
    now = time.monotonic()
    if fixed == 0 or (fixed is None and "cluster_factory" not in getattr(item, "fixturenames", ())):
        return None
    if fixed is not None:
        deadline = Deadline.fixed_at(now, fixed)
    else:
        deadline = Deadline.derived(now, _node_timeout_s(item))
    return Watchdog(
        deadline,
        f"{plain_nodeid(item.nodeid)} ({phase})",
        lambda: node_states(_clusters(item)),
        None if fixed is not None else lambda: _node_timeout_s(item),
    ).start()


def _guarded(item: pytest.Item, phase: str) -> Generator[None, Any, Any]:
    dog = _watchdog(item, phase)
    try:
        return (yield)
    finally:
        if dog is not None:
            dog.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item, "teardown"))
