"""Large clusters come up ready on the local backend: 10 masters x 2 replicas (30 nodes)
and 50 masters without replicas, on every verified implementation.

2.5 to 6 s per cluster here (2 shared cores), 25 s for the six: formation and
readiness ask every node at once and check the slot maps as ranges (bench/agreement.py,
bench/bringup.py).
"""

from __future__ import annotations

import pytest

from harness import Cluster, ClusterSpec, checkers
from harness.crc16 import SLOTS
from harness.impl import Implementation


@pytest.mark.parametrize(("masters", "replicas"), [(10, 2), (50, 0)], ids=["10x2", "50x0"])
def test_large_cluster_is_ready_and_agrees(
    any_impl: Implementation, masters: int, replicas: int
) -> None:
    spec = ClusterSpec(masters=masters, replicas=replicas)
    with Cluster.start(any_impl, spec) as c:
        assert len(c.nodes) == spec.size
        snap = c.snapshot()
        assert not snap.unreachable, snap.unreachable
        assert len(snap.views) == spec.size
        verdict = checkers.healthy(snap)  # coverage on every view, agreement between all
        assert verdict.ok, f"{verdict}\n{snap.describe()}"
        ref = snap.views[0]
        for v in snap.views:
            assert v.owner_ranges == ref.owner_ranges, v.observer
            assert v.info["cluster_known_nodes"] == str(spec.size), v.observer
            assert v.info["cluster_slots_ok"] == str(SLOTS), v.observer
        owners = {who for _, _, who in ref.owner_ranges}
        assert owners == {m.node_id for m in c.initial_masters}
        for m in c.initial_masters:
            want = {r.node_id for r in c.initial_replicas if c.initial_master_of(r) is m}
            assert {r.node_id for r in c.replicas_of(m)} == want, m.addr
