"""Process faults: what can happen to a server process, on any backend.

Each fault is recorded as an :class:`~harness.cluster.Event` on the cluster's timeline
(monotonic clock), so checkers can relate client errors and losses to it. Faults that
must be undone are also context managers that undo them on exit, even on failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from harness.backends import Node
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.cluster import Cluster, Event


class ProcessFaults:
    """Kill, pause, stop and restart nodes of one cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

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
