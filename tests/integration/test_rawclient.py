"""The lean workload client (``engine="raw"``) on real servers: redirections followed,
and every outcome exact when a master dies or stops answering."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pytest

from harness import Cluster, ClusterSpec
from harness.crc16 import SLOTS
from harness.history import Op
from harness.impl import Implementation, available
from harness.rawclient import Addr, Driver
from harness.workload import Workload, WorkloadSpec, spread_keys

NODE_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def impl() -> Implementation:
    found = available("redis-7.0") or available("valkey-8.0")
    if found is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    return found


@pytest.fixture
def cluster(impl: Implementation) -> Iterator[Cluster]:
    # no replicas: a dead master's slots stay down, so its clients keep meeting it. The
    # faults here are meant to end before any node is flagged failing (then every node
    # answers CLUSTERDOWN): a node timeout far beyond them however slowly a loaded machine
    # (parallel tests) runs the workload
    with Cluster.start(
        impl, ClusterSpec(masters=3, replicas=0, node_timeout_ms=NODE_TIMEOUT_MS)
    ) as c:
        yield c


class StaleMapDriver(Driver):
    """Starts believing the first master owns every slot, as a client does whose map
    predates a resharding: the servers' MOVED replies must correct it."""

    def __init__(self, first: Addr, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.first = first
        self.reads = 0

    def read_slot_map(self) -> list[Addr | None]:
        self.reads += 1
        if self.reads == 1:
            return [self.first] * SLOTS
        return super().read_slot_map()


def test_moved_replies_are_followed_to_the_owner(cluster: Cluster) -> None:
    keys = spread_keys("set", 30, 1)
    ops: list[Op] = []
    budget = itertools.count()
    first = cluster.initial_masters[0]
    values = itertools.count(1)

    async def main() -> None:
        driver = StaleMapDriver(
            (first.public_host, first.public_port),
            [(n.public_host, n.public_port) for n in cluster.nodes],
            keys,
            [lambda i=i: ("add", keys[i], next(values)) for i in range(len(keys))],
            may_start=lambda: next(budget) < len(keys),
            record=ops.append,
            next_id=lambda: len(ops),
            timeout_s=2.0,
            rate=None,
        )
        await driver.run()

    asyncio.run(main())
    assert len(ops) == len(keys)
    assert [op.outcome for op in ops] == ["ok"] * len(keys), [op.error for op in ops]
    for op in ops:  # each answered by the node that owns its slot, whatever the stale map said
        assert op.node == cluster.owner_of_slot(op.slot).public_addr, op
    assert {op.node for op in ops} == {m.public_addr for m in cluster.initial_masters}


def _ops_on(wl: Workload, slots: frozenset[int], after_ns: int) -> list[Op]:
    return [op for op in list(wl.history.ops) if op.slot in slots and op.invoke_ns > after_ns]


def _slots(cluster: Cluster, master_index: int) -> frozenset[int]:
    me = cluster.view(cluster.initial_masters[master_index], with_shards=False).myself
    assert me is not None
    return frozenset(s for lo, hi in me.slots for s in range(lo, hi + 1))


def test_a_dead_master_gives_definite_failures_and_few_unknowns(cluster: Cluster) -> None:
    spec = WorkloadSpec(kind="set", clients=4, rate=400, keys=30, seed=3, engine="raw")
    wl = Workload(cluster, spec)
    victim_slots = _slots(cluster, 0)
    with wl.running():
        wl.wait_ops(200)
        cluster.faults.kill(cluster.initial_masters[0])
        # the fault's time is taken just before the signal; the node is dead (reaped) only
        # once kill() returned, and an op invoked in between may still be acknowledged
        dead = time.monotonic_ns()
        wl.wait_ops(400)
    after = _ops_on(wl, victim_slots, dead)
    assert after, "no operation went to the dead master's slots"
    # Nothing can be acknowledged by a dead node; at most the requests in flight at the
    # kill are unknown; every later attempt is refused before anything is sent (a refused
    # connection, or on a loaded machine a connection attempt that outlived the op timeout).
    assert not [op for op in after if op.outcome == "ok"]
    unknown = [op for op in after if op.outcome == "info"]
    assert len(unknown) <= spec.clients, [op.error for op in unknown]
    refused = [op for op in after if op.outcome == "fail"]
    assert refused, "no attempt on the dead master's slots was refused"
    assert all((op.error or "").startswith("NotSent: ") for op in refused), {
        op.error for op in refused
    }


def test_a_paused_master_gives_timeouts_as_unknown(cluster: Cluster) -> None:
    spec = WorkloadSpec(
        kind="set", clients=4, rate=400, keys=30, seed=4, engine="raw", timeout_s=0.3
    )
    wl = Workload(cluster, spec)
    victim = cluster.initial_masters[0]
    victim_slots = _slots(cluster, 0)
    with wl.running():
        wl.wait_ops(200)
        with cluster.faults.paused(victim) as ev:
            stopped = time.monotonic_ns()  # ev.t_ns is taken just before the SIGSTOP
            wl.wait_ops(300)
        resumed = cluster.events[-1].t_ns
        wl.wait_ops(300)
    during = [op for op in _ops_on(wl, victim_slots, ev.t_ns) if op.complete_ns < resumed]
    timeouts = [op for op in during if op.outcome == "info"]
    assert timeouts and all("TimeoutError" in (op.error or "") for op in timeouts)
    assert not [op for op in during if op.outcome == "ok" and op.invoke_ns > stopped]
    # after the resume (well inside the node timeout) its slots are served again
    assert [op for op in _ops_on(wl, victim_slots, resumed) if op.outcome == "ok"]


def test_on_a_proxied_cluster_every_request_goes_through_a_proxy(impl: Implementation) -> None:
    if not impl.has("runtime_announce"):
        pytest.skip(f"{impl.name} lacks runtime_announce")
    with Cluster.start(impl, ClusterSpec(masters=2, replicas=0, proxied=True)) as c:
        # no fault: 5 s per op, so a loaded machine (parallel tests) gives no unknown outcome
        spec = WorkloadSpec(kind="set", clients=2, rate=1000, engine="raw", timeout_s=5.0)
        wl = Workload(c, spec)
        with wl.running():
            wl.wait_ops(200)
        proxies = {n.public_addr for n in c.nodes}
        assert proxies.isdisjoint(n.addr for n in c.nodes)
    ops = list(wl.history.ops)
    assert ops and all(op.outcome == "ok" for op in ops), {op.error for op in ops}
    assert {op.node for op in ops} == proxies
