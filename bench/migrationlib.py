"""What bench/migration.py runs around the move it times: keys placed in the slots that
move, the background load during the move, and the check that every key is still there.

The load is one thread with a redis-py cluster client (the client the suites use), so it
follows ``ASK`` and ``MOVED`` as an application would; it only touches keys that exist,
so the number of keys stays what was filled, and a read that finds nothing is a key the
migration lost sight of (counted as ``missing``, which should stay 0).

redis-py (8.1 included) builds its node table from ``CLUSTER SLOTS`` only, so a new master
that owns no slot yet is unknown to it, and the ``ASK`` that sends a query there fails
inside the client (``AttributeError``: redis/redis-py#4015, fix proposed in #4214). The
load's client is told of the new master beforehand (:func:`know_node`), as that fix would;
any other exception is counted by its kind, never raised.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from redis.cluster import PRIMARY, ClusterNode, RedisCluster

from harness.backends.base import Node
from harness.cluster import Cluster
from harness.crc16 import key_slot

FILL_CHUNK = 1000  # keys per pipeline while filling and verifying


def slot_tags(slots: Sequence[int]) -> dict[int, str]:
    """A hash tag for each slot of ``slots`` (``m<n>`` with ``key_slot`` = the slot):
    found by hashing ``m0, m1, ...`` once, much faster than a search per slot."""
    wanted = set(slots)
    tags: dict[int, str] = {}
    n = 0
    while len(tags) < len(wanted):
        tag = f"m{n}"
        s = key_slot(tag)
        if s in wanted and s not in tags:
            tags[s] = tag
        n += 1
    return tags


def make_keys(slots: Sequence[int], count: int) -> list[str]:
    """``count`` keys spread round-robin over ``slots`` (key ``i`` in ``slots[i % n]``)."""
    tags = slot_tags(slots)
    return [f"{{{tags[slots[i % len(slots)]]}}}:{i}" for i in range(count)]


def value_of(i: int, size: int) -> str:
    return f"{i:010d}".ljust(size, "x")[: max(size, 10)]


def fill(node: Node, keys: Sequence[str], size: int) -> None:
    """SET every key on ``node`` (it owns all their slots), pipelined."""
    c = node.client(10.0)
    try:
        for at in range(0, len(keys), FILL_CHUNK):
            pipe = c.pipeline(transaction=False)
            for i, k in enumerate(keys[at : at + FILL_CHUNK], start=at):
                pipe.set(k, value_of(i, size))
            pipe.execute()
    finally:
        c.close()


def count_readable(cluster: Cluster, keys: Sequence[str]) -> int:
    """How many of ``keys`` a fresh cluster client reads back (pipelined per node)."""
    client = cluster.client()
    found = 0
    for at in range(0, len(keys), FILL_CHUNK):
        pipe = client.pipeline()  # type: ignore[no-untyped-call]
        for k in keys[at : at + FILL_CHUNK]:
            pipe.get(k)
        found += sum(v is not None for v in pipe.execute())
    return found


def know_node(client: RedisCluster, node: Node) -> None:
    """Add ``node`` to the client's node table as a primary (redis/redis-py#4015)."""
    entry = ClusterNode(node.public_host, node.public_port, server_type=PRIMARY)  # type: ignore[no-untyped-call]
    client.nodes_manager.nodes_cache.setdefault(entry.name, entry)


@dataclass(frozen=True)
class LoadMark:
    """The load's counters at one moment."""

    at: float  # time.monotonic()
    ok: int
    errors: int
    missing: int


class Load(threading.Thread):
    """SET and GET in turn on random keys of ``keys`` through a cluster client, paced at
    ``rate`` ops/s (0: as fast as one client goes), until :meth:`stop`, ``max_ops``
    operations or ``max_s`` seconds, whichever comes first. ``new_masters``: nodes that
    own no slot yet (:func:`know_node`)."""

    def __init__(
        self,
        cluster: Cluster,
        keys: Sequence[str],
        *,
        size: int,
        rate: float,
        max_ops: int,
        max_s: float,
        seed: int,
        new_masters: Sequence[Node] = (),
    ) -> None:
        super().__init__(name="bench-load", daemon=True)
        self.client = cluster.client(socket_timeout=5.0)  # closed with the cluster
        for node in new_masters:
            know_node(self.client, node)
        self.keys = keys
        self.size = size
        self.rate = rate
        self.max_ops = max_ops
        self.max_s = max_s
        self.rng = random.Random(seed)
        self.ok = 0
        self.errors = 0
        self.missing = 0
        self.kinds: Counter[str] = Counter()
        self.bounded = False  # stopped by max_ops / max_s rather than by stop()
        self._halt = threading.Event()

    def mark(self) -> LoadMark:
        return LoadMark(time.monotonic(), self.ok, self.errors, self.missing)

    def started(self) -> tuple[bool, str]:
        """A wait_for probe: has the load completed an operation yet?"""
        if not self.is_alive() and self.ok == 0:
            raise RuntimeError(f"the load ended before its first op: {dict(self.kinds)}")
        return self.ok > 0, f"{self.ok} ops, {self.errors} errors"

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        t0 = time.monotonic()
        step = 1.0 / self.rate if self.rate > 0 else 0.0
        due = t0
        for n in range(self.max_ops):
            if self._halt.is_set():
                return
            now = time.monotonic()
            if now - t0 >= self.max_s:
                break
            if step:
                due += step
                if due > now and self._halt.wait(due - now):
                    return
            self._one(n)
        self.bounded = True

    def _one(self, n: int) -> None:
        i = self.rng.randrange(len(self.keys))
        key = self.keys[i]
        try:
            if n % 2:
                if self.client.get(key) is None:
                    self.missing += 1
                    return
            else:
                self.client.set(key, value_of(i, self.size))
            self.ok += 1
        except Exception as exc:  # the load reports what it saw; the move goes on
            self.errors += 1
            self.kinds[type(exc).__name__] += 1
