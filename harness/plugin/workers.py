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

from harness.plugin.state import STATE

SEED = "harness_seed"
OUT = "harness"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def seed_from_controller(config: pytest.Config) -> int | None:
    value = getattr(config, "workerinput", {}).get(SEED)
    return int(value) if value is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if getattr(config.option, "numprocesses", None) and config.option.dist == "no":
        config.option.dist = "loadgroup"


class Controller:
    """Registered on the xdist controller only."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SEED] = self.config.stash[STATE].seed

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
        config.pluginmanager.register(Worker(config), "redis-cluster-harness-xdist-worker")
    elif config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        config.pluginmanager.register(Controller(config), "redis-cluster-harness-xdist")
