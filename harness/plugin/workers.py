"""pytest-xdist: one run, many processes, one report.

The controller draws the seed and hands it to every worker (the same seed, the same
randomised choices, whatever worker a test lands on); each worker sends back what the
controller cannot know, because it never collects or runs a test: which implementation
the tests ran on, and which shared clusters a test left changed. Reports of the tests
themselves reach the controller through xdist, so ``summary.json`` and the metrics table
are written there, once. With ``-n`` and no ``--dist``, the tests sharing a cluster go to
one worker (``loadgroup``, :mod:`harness.plugin.shared`).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.plugin.shared import GROUP_PREFIX
from harness.plugin.state import STATE

SEED = "harness_seed"
GROUPS = "harness_loadgroup"  # a worker reads its args itself: tell it --dist loadgroup
OUT = "harness"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def seed_from_controller(config: pytest.Config) -> int | None:
    value = getattr(config, "workerinput", {}).get(SEED)
    return int(value) if value is not None else None


def _dist_given(config: pytest.Config) -> bool:
    given = [*config.invocation_params.args, *config.getini("addopts")]
    return any(a == "--dist" or a.startswith(("--dist=", "-d")) for a in map(str, given))


def choose_dist(config: pytest.Config) -> None:
    """``-n`` without ``--dist``: ``loadgroup`` (xdist has made it ``load`` by now), so
    the tests of a shared cluster run in one worker; the workers are started later and
    take the setting from here."""
    if getattr(config.option, "dist", "no") == "load" and not _dist_given(config):
        config.option.dist = "loadgroup"


def name_group(item: pytest.Item, group: str) -> None:
    """Put ``@group`` at the end of the test's id, which is how xdist's ``loadgroup``
    tells the controller the group. xdist 3.8 does it by assigning ``item._nodeid``,
    which pytest 9.2 no longer reads (ids are structured there), so under 9.2 the groups
    are silently ignored; this does the same through the attribute 9.2 reads."""
    if "@" in item.nodeid:
        return
    try:
        from _pytest.nodeid import coerce_node_id  # pytest >= 9.2 only
    except ImportError:  # older pytest: xdist appends it itself
        return
    item._id = coerce_node_id(f"{item.nodeid}@{group}")


def plain_nodeid(nodeid: str) -> str:
    """The test id without the group suffix of :func:`name_group` (for the report)."""
    head, sep, tail = nodeid.rpartition("@")
    return head if sep and tail.startswith(GROUP_PREFIX) else nodeid


class Controller:
    """Registered on the xdist controller only."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SEED] = self.config.stash[STATE].seed
        node.workerinput[GROUPS] = self.config.option.dist == "loadgroup"

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        out = getattr(node, "workeroutput", {}).get(OUT)
        if not out:
            return
        state = self.config.stash[STATE]
        state.used = state.used or bool(out.get("used"))
        if out.get("implementation") and state.impl_meta is None:
            state.impl_meta = out["implementation"]
        state.pool_notes.extend(out.get("pool_notes", []))


class Worker:
    """Registered on an xdist worker only."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        state = self.config.stash[STATE]
        self.config.workeroutput[OUT] = {  # type: ignore[attr-defined]
            "used": state.used,
            "implementation": state.implementation_meta(),
            "pool_notes": list(state.pool.replaced if state.pool else ()),
        }


def register(config: pytest.Config) -> None:
    if is_worker(config):
        if config.workerinput.get(GROUPS):  # type: ignore[attr-defined]
            config.option.loadgroup = True  # xdist names the group in the test ids
        config.pluginmanager.register(Worker(config), "redis-cluster-harness-xdist-worker")
    elif config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        choose_dist(config)
        config.pluginmanager.register(Controller(config), "redis-cluster-harness-xdist")
