"""Network faults: cut a node off, drop packets per pair of nodes, partitions.

They need a backend that can cut links (:class:`~harness.backends.base.CutsLinks`:
containers, or a local cluster in its own network namespace); elsewhere they raise
:class:`~harness.errors.NotSupportedError`, and tests declare
``@pytest.mark.requires("network_faults")`` to be skipped with the reason. Which links
are cut is state of this layer, not of the nodes: :meth:`heal` undoes exactly that.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from harness import partitions
from harness.backends.base import CutsLinks
from harness.errors import NotSupportedError, UsageError
from harness.faults.base import FaultGroup, Target, as_nodes, names
from harness.faults.kinds import CLUSTER, declare
from harness.partitions import Partition

if TYPE_CHECKING:
    from harness.backends.base import Node
    from harness.history import Event

ISOLATE = declare(
    "isolate",
    {"rejoin", "heal"},
    replication_grace=True,
    doc="cut off from peers and clients, keeps running",
)
PARTITION = declare(
    "partition", {"heal"}, replication_grace=True, doc="packets dropped per pair of nodes"
)
DROP = declare("drop", {"heal"}, doc="one-way packet drops from sources to targets")


class NetworkFaults(FaultGroup):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.isolated_nodes: set[Node] = set()
        #: target node -> the nodes whose packets it drops
        self.blocked: dict[Node, set[Node]] = {}

    def _links(self) -> CutsLinks:
        be = self.target.backend
        if not isinstance(be, CutsLinks):
            raise NotSupportedError(be.why_links_stay())
        return be

    def isolate(self, node: Node) -> Event:
        """Cut ``node`` off from its peers and clients; it keeps running."""
        links = self._links()

        def apply() -> None:
            links.cut_off(node)
            self.isolated_nodes.add(node)

        return self.inject(ISOLATE, node.addr, apply)

    def rejoin(self, node: Node) -> Event:
        self._links().reconnect(node)
        self.isolated_nodes.discard(node)
        return self.healed("rejoin", node.addr)

    @contextmanager
    def isolated(self, node: Node) -> Iterator[Event]:
        """Isolate for the duration of the block; always reconnects."""
        with self.held(lambda: self.isolate(node), lambda: self.rejoin(node)) as ev:
            yield ev

    def _block(self, target: Node, sources: Iterable[Node]) -> None:
        links = self._links()
        have = self.blocked.setdefault(target, set())
        for s in sources:
            if s is not target and s not in have:
                links.block(target, s)
                have.add(s)

    def drop(self, sources: Node | Iterable[Node], targets: Node | Iterable[Node]) -> Event:
        """Drop packets from each source to each target (one-way; call twice for both)."""
        src, dst = as_nodes(sources), as_nodes(targets)
        self._links()

        def apply() -> None:
            for t in dst:
                self._block(t, src)

        return self.inject(DROP, names(dst), apply, "from " + names(src))

    def heal(self) -> Event:
        """Remove every packet drop and reconnect every isolated node."""
        if self.isolated_nodes or self.blocked:
            links = self._links()
            for node in sorted(self.isolated_nodes, key=lambda n: n.index):
                links.reconnect(node)
            self.isolated_nodes.clear()
            for t, sources in sorted(self.blocked.items(), key=lambda kv: kv[0].index):
                for s in sorted(sources, key=lambda n: n.index):
                    links.unblock(t, s)
            self.blocked.clear()
        return self.healed("heal", CLUSTER)

    @contextmanager
    def dropping(
        self, sources: Node | Iterable[Node], targets: Node | Iterable[Node]
    ) -> Iterator[Event]:
        """Drop packets for the duration of the block; always heals."""
        with self.held(lambda: self.drop(sources, targets), self.heal) as ev:
            yield ev

    def partition(
        self,
        shape: Partition | str,
        *,
        node: Node | None = None,
        groups: Sequence[Sequence[Node]] | None = None,
        sources: Sequence[Node] | None = None,
        targets: Sequence[Node] | None = None,
        minority: int | None = None,
        rng: random.Random | None = None,
    ) -> Partition:
        """Cut links in one of the shapes of :mod:`harness.partitions`: "isolate" (node=),
        "split" (groups=), "majority-minority" (minority=, rng=), "bridge" (rng=),
        "majorities-ring" (rng=), "one-way" (sources=, targets=), or a ready Partition.
        :meth:`heal` undoes it."""
        p = (
            shape
            if isinstance(shape, Partition)
            else self._shape(shape, node, groups, sources, targets, minority, rng)
        )
        nodes = self.target.nodes
        self._links()
        by_target: dict[int, list[Node]] = {}
        for s, d in p.blocked:
            by_target.setdefault(d, []).append(nodes[s])

        def apply() -> None:
            for d, srcs in sorted(by_target.items()):
                self._block(nodes[d], srcs)

        self.inject(PARTITION, CLUSTER, apply, p.describe())
        return p

    @contextmanager
    def partitioned(self, shape: Partition | str, **kwargs: Any) -> Iterator[Partition]:
        """Partition for the duration of the block; always heals."""
        p = self.partition(shape, **kwargs)
        try:
            yield p
        finally:
            self.heal()

    def _shape(
        self,
        shape: str,
        node: Node | None,
        groups: Sequence[Sequence[Node]] | None,
        sources: Sequence[Node] | None,
        targets: Sequence[Node] | None,
        minority: int | None,
        rng: random.Random | None,
    ) -> Partition:
        count = len(self.target.nodes)
        rng = rng or random.Random()

        def need(value: object, name: str) -> None:
            if value is None:
                raise UsageError(f"partition shape {shape!r} needs {name}=")

        if shape == "isolate":
            need(node, "node")
            assert node is not None
            return partitions.isolate(count, node.index)
        if shape == "split":
            need(groups, "groups")
            assert groups is not None
            return partitions.split(count, [[n.index for n in g] for g in groups])
        if shape == "majority-minority":
            return partitions.majority_minority(count, rng, minority)
        if shape == "bridge":
            return partitions.bridge(count, rng)
        if shape == "majorities-ring":
            return partitions.majorities_ring(count, rng)
        if shape == "one-way":
            need(sources, "sources")
            need(targets, "targets")
            assert sources is not None and targets is not None
            return partitions.one_way(count, [n.index for n in sources], [n.index for n in targets])
        raise UsageError(
            f"unknown partition shape {shape!r}; use isolate, split, majority-minority, bridge, "
            "majorities-ring or one-way"
        )
