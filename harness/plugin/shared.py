"""Clusters shared by the tests that only read: one start for many tests.

Starting a cluster costs seconds (processes, formation, convergence); a conformance test
that asks a node a question costs milliseconds. Tests marked ``shares_cluster`` take a
cluster of their shape from a per-process pool instead of starting one. The pool is
honest about what a shared cluster is:

- after every test its health and its layout (who is master of which slots, who
  replicates whom) are checked against what they were at bring-up; a test that changed
  them gets its cluster closed and the next test a new one, and the report names the test
  that broke it (a ``shares_cluster`` mark on a test that should not have it);
- before every test the data the previous one wrote is flushed and the flush waited for
  on every node, so a test that counts keys sees only its own;
- a step ``test <nodeid>`` goes on the cluster's timeline and into every node's log, so a
  log shared by many tests still says which test each line belongs to.

Under pytest-xdist each worker has its own pool; :func:`group_of` puts the tests of one
shape in one ``xdist_group`` so that ``--dist loadgroup`` sends them to one worker.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import pytest
import redis

from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.topology import Snapshot
from harness.wait import wait_for

#: at most this many shapes stay started per process (least recently used goes first)
MAX_CLUSTERS = 3
GROUP_PREFIX = "harness-shared-"


def settings_key(settings: Mapping[str, Any]) -> tuple[tuple[str, Hashable], ...]:
    """A hashable key of a cluster's settings (what ``cluster_factory`` was given)."""
    return tuple(sorted((k, _hashable(v)) for k, v in settings.items()))


def _hashable(v: Any) -> Hashable:
    if isinstance(v, dict):
        return tuple(sorted(v.items()))
    if isinstance(v, list):
        return tuple(v)
    return v  # type: ignore[no-any-return]


def group_of(settings: Mapping[str, Any]) -> str:
    """The ``xdist_group`` of the tests sharing clusters of these settings."""
    digest = hashlib.sha1(repr(settings_key(settings)).encode()).hexdigest()[:8]
    return GROUP_PREFIX + digest


def layout(snapshot: Snapshot) -> dict[str, tuple[str, object]]:
    """Who is what, as the first node answering sees it: node id -> ("master", slots) or
    ("replica", master id). Pure; compared before and after a test."""
    if not snapshot.views:
        return {}
    out: dict[str, tuple[str, object]] = {}
    for n in snapshot.views[0].nodes:
        if n.is_master:
            out[n.node_id] = ("master", tuple(n.slots))
        else:
            out[n.node_id] = ("replica", n.master_id)
    return out


def changes(
    before: Mapping[str, tuple[str, object]], after: Mapping[str, tuple[str, object]]
) -> list[str]:
    """What differs between two layouts, one phrase each (empty: nothing)."""
    out: list[str] = []
    for node_id in sorted(set(before) | set(after)):
        was, now = before.get(node_id), after.get(node_id)
        if was != now:
            out.append(f"{node_id[:8]}: {_role(was)} -> {_role(now)}")
    return out


def members(cluster: Cluster) -> list[str]:
    """The cluster's nodes by name: a test that added or removed one changed the cluster
    even when the map it leaves looks as before."""
    return [n.name for n in cluster.nodes]


def _role(entry: tuple[str, object] | None) -> str:
    if entry is None:
        return "absent"
    kind, what = entry
    if kind == "replica":
        return f"replica of {str(what)[:8]}"
    return f"master of {len(what) if isinstance(what, tuple) else 0} slot range(s)"


class _Entry:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.layout = layout(cluster.snapshot())
        self.members = members(cluster)
        self.tests = 0


class ClusterPool:
    """Started clusters by settings, for the tests of one process."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[tuple[str, Hashable], ...], _Entry] = OrderedDict()
        self.replaced: list[str] = []  # one line per cluster a test left changed

    def get(
        self, settings: Mapping[str, Any], start: Callable[[], Cluster], nodeid: str
    ) -> Cluster:
        """A healthy cluster of these settings, emptied of the previous test's keys."""
        key = settings_key(settings)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            try:
                _flush(entry.cluster)
            except (HarnessError, redis.exceptions.RedisError, OSError) as exc:
                self._drop(key, f"could not be emptied for {nodeid}: {exc}")
                entry = None
        if entry is None:
            while len(self._entries) >= MAX_CLUSTERS:
                oldest = next(iter(self._entries))
                self._drop(oldest, None)
            entry = _Entry(start())
            self._entries[key] = entry
        entry.tests += 1
        entry.cluster.record("test", nodeid)
        return entry.cluster

    def release(self, settings: Mapping[str, Any], nodeid: str) -> str | None:
        """After a test: keep the cluster if it is as it was, else close it and say why."""
        key = settings_key(settings)
        entry = self._entries.get(key)
        if entry is None:
            return None
        c = entry.cluster
        problem: str | None = None
        try:
            verdict = c.check(c.nodes)
            diff = changes(entry.layout, layout(c.snapshot(c.nodes)))
            if members(c) != entry.members:  # scaled (harness.ops), even if back to its map
                problem = f"its nodes changed: {' '.join(entry.members)} -> {' '.join(members(c))}"
            elif not verdict.ok:
                problem = str(verdict).splitlines()[0]
            elif diff:
                problem = "; ".join(diff)
        except (HarnessError, redis.exceptions.RedisError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return None
        line = f"{nodeid} left its shared cluster changed ({problem}); the next test gets a new one"
        self._drop(key, line)
        return line

    def _drop(self, key: tuple[tuple[str, Hashable], ...], why: str | None) -> None:
        entry = self._entries.pop(key)
        if why is not None:
            self.replaced.append(why)
        with contextlib.suppress(Exception):  # teardown goes on
            entry.cluster.close()

    def close(self) -> None:
        while self._entries:
            self._drop(next(iter(self._entries)), None)


def _flush(cluster: Cluster) -> None:
    """Empty every master and wait until every node (replicas too) holds no key."""
    masters = cluster.masters()
    for m in masters:
        m.call("FLUSHALL")

    def empty() -> tuple[bool, str]:
        sizes = {n.addr: int(str(n.call("DBSIZE"))) for n in cluster.nodes}
        return all(v == 0 for v in sizes.values()), str(sizes)

    wait_for(empty, cluster.spec.node_timeout_ms / 1000 * 2, "the shared cluster to be empty")


SHARED_MARK = "shares_cluster"


def shares(item: pytest.Item) -> bool:
    return item.get_closest_marker(SHARED_MARK) is not None


def mark_settings(item: pytest.Item) -> dict[str, Any]:
    """The cluster settings a test's marks ask for (``cluster(...)``, closest wins;
    ``requires("network_faults")`` implies ``network_faults=True``)."""
    kwargs: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers("cluster"))):
        if mark.args:
            raise TypeError(
                "@pytest.mark.cluster takes keyword arguments only, e.g. cluster(masters=3)"
            )
        kwargs.update(mark.kwargs)
    if any("network_faults" in m.args for m in item.iter_markers("requires")):
        kwargs.setdefault("network_faults", True)
    return kwargs
