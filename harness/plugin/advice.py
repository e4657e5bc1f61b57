"""Advisories (:mod:`harness.advisories`) of the clusters a run used, where users see
them: a section of the terminal summary and ``advisories`` in ``summary.json``.

An advisory is about a cluster, not a test, and never fails one. It travels as a
pytest ``user_properties`` entry ``advisory:<code>`` of the test that started (or
attached to) the cluster, the channel metrics use, so it survives pytest-xdist and shows
in JUnit properties too; the reporter gathers them by code and message, with the tests
they came from. Not a pytest warning: ``-W error`` would turn advice into failures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import pytest
import redis

from harness import advisories
from harness.cluster import Cluster
from harness.errors import HarnessError

PREFIX = "advisory:"


def record(item: pytest.Item, cluster: Cluster) -> None:
    """The advisories about ``cluster``, on ``item``'s properties (once per code). The
    harness's own clients start from every node, so no startup-node advisory here."""
    live = cluster.live_nodes()
    if not live:
        return
    with contextlib.suppress(redis.exceptions.RedisError, HarnessError):
        view = cluster.view(live[0], with_shards=False)
        meaningful = not cluster.backend.one_host and not cluster.spec.proxied
        for adv in advisories.for_cluster(view, hosts_meaningful=meaningful):
            key = PREFIX + adv.code
            if all(k != key for k, _ in item.user_properties):
                item.user_properties.append((key, adv.message))


def from_properties(props: Iterable[tuple[str, object]]) -> list[tuple[str, str]]:
    return [(k[len(PREFIX) :], str(v)) for k, v in props if k.startswith(PREFIX)]


class Gathered:
    """Advisories of the run, by (code, message), with the tests that reported them."""

    def __init__(self) -> None:
        self.tests: dict[tuple[str, str], list[str]] = {}

    def add(self, nodeid: str, props: Iterable[tuple[str, object]]) -> None:
        for key in from_properties(props):
            seen = self.tests.setdefault(key, [])
            if nodeid not in seen:
                seen.append(nodeid)

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {
                "code": code,
                "message": message,
                "source": advisories.SOURCES.get(code, ""),
                "tests": tests,
            }
            for (code, message), tests in self.tests.items()
        ]

    def lines(self) -> list[str]:
        out = []
        for (code, message), tests in self.tests.items():
            more = f" and {len(tests) - 1} more" if len(tests) > 1 else ""
            out.append(f"{code}: {message} (cluster of {tests[0]}{more})")
        if out:
            out.append("not failures; the document each comes from: summary.json 'advisories'")
        return out
