"""Process faults: what can happen to a server process, on any backend.

Kill, pause, stop, start and their combinations are part of every backend's node
contract (:class:`~harness.backends.base.Node`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.faults.base import FaultGroup
from harness.faults.kinds import declare

if TYPE_CHECKING:
    from harness.backends.base import Node
    from harness.history import Event

# A fresh process ends every process fault of its node: "start" heals kill, stop, pause.
KILL = declare("kill", {"start"}, replication_grace=True, doc="SIGKILL: no shutdown, no final save")
STOP = declare(
    "stop", {"start"}, replication_grace=True, doc="graceful shutdown (SIGTERM), may save"
)
PAUSE = declare(
    "pause",
    {"resume", "start"},
    replication_grace=True,
    doc="frozen (SIGSTOP / cgroup freezer): holds its sockets, answers nothing",
)


class ProcessFaults(FaultGroup):
    def kill(self, node: Node) -> Event:
        """SIGKILL the node: no shutdown, no final save, sockets reset."""
        return self.inject(KILL, node.addr, node.kill)

    def pause(self, node: Node) -> Event:
        """Freeze the node (SIGSTOP): it holds its sockets but answers nothing."""
        return self.inject(PAUSE, node.addr, node.pause)

    def resume(self, node: Node) -> Event:
        node.resume()
        return self.healed("resume", node.addr)

    @contextmanager
    def paused(self, node: Node) -> Iterator[Event]:
        """Pause for the duration of the block; always resumes."""
        with self.held(
            lambda: self.pause(node), lambda: node.state == "paused" and self.resume(node)
        ) as ev:
            yield ev

    def stop(self, node: Node, timeout: float = 10.0) -> Event:
        """Graceful shutdown (SIGTERM): the server may save and closes cleanly."""
        return self.inject(STOP, node.addr, lambda: node.stop(timeout))

    def start(self, node: Node, timeout: float = 15.0) -> Event:
        """Start a stopped or killed node again with its data directory (nodes.conf,
        RDB/AOF) intact, and wait until it answers."""
        if node.state in ("running", "paused"):
            raise HarnessError(
                f"{node.name} {node.addr} is {node.state}; stop or kill it before starting it"
            )
        node.start()
        node.wait_answering(timeout)
        return self.healed("start", node.addr)

    def restart(self, node: Node, timeout: float = 15.0) -> Event:
        """Graceful stop, then start with the same data."""
        self.stop(node)
        return self.start(node, timeout)

    def crash_restart(self, node: Node, timeout: float = 15.0) -> Event:
        """SIGKILL, then start with the same data: what survives is what was on disk."""
        self.kill(node)
        return self.start(node, timeout)
