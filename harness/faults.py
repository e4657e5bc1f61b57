"""Faults: what can happen to a node, on any backend.

Process faults (kill, pause, stop, restart) work everywhere. Network faults (isolate a
node, drop packets between nodes) need a backend that can cut links; elsewhere they raise
:class:`~harness.errors.NotSupportedError`, and tests declare
``@pytest.mark.requires("network_faults")`` to be skipped with the reason.

Each fault is recorded as an :class:`~harness.cluster.Event` on the cluster's timeline
(monotonic clock), so checkers can relate client errors and losses to it. Faults that
must be undone are also context managers that undo them on exit, even on failure.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from harness import partitions
from harness.backends import Node
from harness.errors import HarnessError, NotSupportedError, UsageError
from harness.partitions import Partition

if TYPE_CHECKING:
    from harness.cluster import Cluster, Event


class Faults:
    """Faults on the nodes of one cluster; the same object on every backend."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @contextmanager
    def _undo_record_on_error(self, ev: Event) -> Iterator[None]:
        """A fault that could not be applied must not appear on the timeline."""
        try:
            yield
        except BaseException:
            self.cluster.events.remove(ev)
            raise

    def kill(self, node: Node) -> Event:
        """SIGKILL the node: no shutdown, no final save, sockets reset."""
        ev = self.cluster.record("kill", node.addr)
        node.kill()
        return ev

    def pause(self, node: Node) -> Event:
        """Freeze the node (SIGSTOP): it holds its sockets but answers nothing."""
        ev = self.cluster.record("pause", node.addr)
        node.pause()
        return ev

    def resume(self, node: Node) -> Event:
        node.resume()
        return self.cluster.record("resume", node.addr)

    @contextmanager
    def paused(self, node: Node) -> Iterator[Event]:
        """Pause for the duration of the block; always resumes."""
        ev = self.pause(node)
        try:
            yield ev
        finally:
            if node.state == "paused":
                self.resume(node)

    def stop(self, node: Node, timeout: float = 10.0) -> Event:
        """Graceful shutdown (SIGTERM): the server may save and closes cleanly."""
        ev = self.cluster.record("stop", node.addr)
        node.stop(timeout)
        return ev

    def start(self, node: Node, timeout: float = 15.0) -> Event:
        """Start a stopped or killed node again with its data directory (nodes.conf,
        RDB/AOF) intact, and wait until it answers."""
        if node.state in ("running", "paused"):
            raise HarnessError(
                f"{node.name} {node.addr} is {node.state}; stop or kill it before starting it"
            )
        node.start()
        node.wait_answering(timeout)
        return self.cluster.record("start", node.addr)

    def restart(self, node: Node, timeout: float = 15.0) -> Event:
        """Graceful stop, then start with the same data."""
        self.stop(node)
        return self.start(node, timeout)

    def crash_restart(self, node: Node, timeout: float = 15.0) -> Event:
        """SIGKILL, then start with the same data: what survives is what was on disk."""
        self.kill(node)
        return self.start(node, timeout)

    # -- network ---------------------------------------------------------------------
    def isolate(self, node: Node) -> Event:
        """Cut ``node`` off from its peers and clients; it keeps running."""
        ev = self.cluster.record("isolate", node.addr)
        with self._undo_record_on_error(ev):
            node.isolate()
        return ev

    def rejoin(self, node: Node) -> Event:
        node.rejoin()
        return self.cluster.record("rejoin", node.addr)

    @contextmanager
    def isolated(self, node: Node) -> Iterator[Event]:
        """Isolate for the duration of the block; always reconnects."""
        ev = self.isolate(node)
        try:
            yield ev
        finally:
            self.rejoin(node)

    def drop(self, sources: Node | Iterable[Node], targets: Node | Iterable[Node]) -> Event:
        """Drop packets from each source to each target (one-way; call twice for both)."""
        src = [sources] if isinstance(sources, Node) else list(sources)
        dst = [targets] if isinstance(targets, Node) else list(targets)
        ev = self.cluster.record(
            "drop", ",".join(n.addr for n in dst), "from " + ",".join(n.addr for n in src)
        )
        with self._undo_record_on_error(ev):
            for target in dst:
                target.drop_from([s for s in src if s is not target])
        return ev

    def heal(self) -> Event:
        """Remove every packet drop and reconnect every isolated node."""
        for node in self.cluster.nodes:
            if node.isolated:
                node.rejoin()
            if getattr(node, "dropped_from", None):
                node.heal_drops()
        return self.cluster.record("heal", "cluster")

    @contextmanager
    def dropping(
        self, sources: Node | Iterable[Node], targets: Node | Iterable[Node]
    ) -> Iterator[Event]:
        """Drop packets for the duration of the block; always heals."""
        ev = self.drop(sources, targets)
        try:
            yield ev
        finally:
            self.heal()

    # -- partitions ------------------------------------------------------------------
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
        nodes = self.cluster.nodes
        ev = self.cluster.record("partition", "cluster", p.describe())
        by_target: dict[int, list[Node]] = {}
        for s, d in p.blocked:
            by_target.setdefault(d, []).append(nodes[s])
        with self._undo_record_on_error(ev):
            for d, srcs in sorted(by_target.items()):
                nodes[d].drop_from(srcs)
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
        count = len(self.cluster.nodes)
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

    # -- link faults through the nodes' proxies (clusters with proxied=True) ------------
    def _proxies(self, nodes: Node | Iterable[Node], bus: bool = False) -> list[Any]:
        chosen = [nodes] if isinstance(nodes, Node) else list(nodes)
        found: list[Any] = []
        for n in chosen:
            if n.proxies is None:
                raise NotSupportedError(
                    f"{n.name} {n.addr} has no proxy: start the cluster with proxied=True "
                    "(@pytest.mark.cluster(proxied=True))"
                )
            found.extend(n.proxies if bus else n.proxies[:1])
        return found

    @contextmanager
    def _toxic(
        self, action: str, nodes: Node | Iterable[Node], toxic: str, bus: bool = False, **attrs: Any
    ) -> Iterator[Event]:
        proxies = self._proxies(nodes, bus)
        ev = self.cluster.record(action, ",".join(p.name for p in proxies), str(attrs))
        added = []
        try:
            for p in proxies:
                for stream in ("downstream", "upstream"):
                    name = f"rch-{toxic}-{stream}"
                    p.add_toxic(toxic, stream=stream, name=name, **attrs)
                    added.append((p, name))
            yield ev
        finally:
            for p, name in added:
                with contextlib.suppress(HarnessError):
                    p.remove_toxic(name)
            self.cluster.record(f"{action}-healed", ev.node)

    def latency(self, nodes: Node | Iterable[Node], ms: int, jitter: int = 0) -> Any:
        """Delay client traffic to and from the nodes by ``ms`` (± ``jitter``) each way."""
        return self._toxic("latency", nodes, "latency", latency=ms, jitter=jitter)

    def bandwidth(self, nodes: Node | Iterable[Node], kbps: int) -> Any:
        """Limit client traffic of the nodes to ``kbps`` KB/s each way."""
        return self._toxic("bandwidth", nodes, "bandwidth", rate=kbps)

    def slow_close(self, nodes: Node | Iterable[Node], delay_ms: int = 1000) -> Any:
        """Delay the closing of client connections by ``delay_ms``."""
        return self._toxic("slow-close", nodes, "slow_close", delay=delay_ms)

    def reset_connections(self, nodes: Node | Iterable[Node], after_ms: int = 0) -> Any:
        """Reset (TCP RST) client connections ``after_ms`` after they carry data."""
        return self._toxic("reset-connections", nodes, "reset_peer", timeout=after_ms)

    @contextmanager
    def cut_clients(self, nodes: Node | Iterable[Node], bus: bool = False) -> Iterator[Event]:
        """Disable the nodes' client proxies (with ``bus=True`` also their bus proxies):
        live connections close and new ones are refused until the block ends. Note that
        a proxy-only cut does not partition a cluster: a node still reaches its peers
        through *their* proxies, so nobody marks it failed."""
        proxies = self._proxies(nodes, bus)
        ev = self.cluster.record("cut-proxies", ",".join(p.name for p in proxies))
        disabled = []
        try:
            for p in proxies:
                p.disable()
                disabled.append(p)
            yield ev
        finally:
            for p in disabled:
                with contextlib.suppress(HarnessError):
                    p.enable()
            self.cluster.record("cut-proxies-healed", ev.node)
