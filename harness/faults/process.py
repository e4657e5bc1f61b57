"""Process faults: what can happen to a server process, on any backend.

Kill, pause, stop, start and their combinations are part of every backend's node
contract (:class:`~harness.backends.base.Node`). ``stall`` blocks the server's main
thread from inside (``DEBUG SLEEP``), as a slow disk or a long fork would: unlike a
pause, the process keeps running and the kernel still accepts connections, so clients
and peers see timeouts rather than a frozen peer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis

from harness.errors import HarnessError, NotSupportedError
from harness.faults.base import FaultGroup
from harness.faults.kinds import declare, healed_name

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

STALL = declare(
    "stall",
    {healed_name("stall"), "start"},
    replication_grace=True,
    doc="main thread blocked by DEBUG SLEEP (a slow disk, a long fork)",
)


class Stall:
    """A running ``DEBUG SLEEP`` on ``node``; :meth:`wait` returns once it answers again."""

    def __init__(self, node: Node, seconds: float) -> None:
        self.node = node
        self.seconds = seconds
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise HarnessError(f"{self.node.addr} still stalled after {timeout} s")
        if self.error is not None:
            raise HarnessError(f"DEBUG SLEEP on {self.node.addr} failed: {self.error}")


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

    def stall(self, node: Node, seconds: float) -> Stall:
        """Block the node's main thread for ``seconds`` (``DEBUG SLEEP``) and return at
        once; the heal (``stall-healed``) is recorded when the node answers again."""
        if seconds <= 0:
            raise HarnessError(f"stall of {seconds} s: give a positive duration")
        try:  # a server may refuse DEBUG (enable-debug-command no): say so before the fault
            node.call("DEBUG", "SLEEP", "0")
        except redis.exceptions.ResponseError as exc:
            raise NotSupportedError(
                f"{node.addr} refuses DEBUG, so it cannot be stalled: {exc}"
            ) from None
        stall = Stall(node, seconds)
        detail = f"{seconds:.3f} s"

        def sleep() -> None:
            try:
                node.call("DEBUG", "SLEEP", f"{seconds:.3f}", timeout=seconds + 30)
            except redis.exceptions.RedisError as exc:
                stall.error = exc
            finally:
                self.busy.discard(node)
                self.healed(healed_name(STALL.name), node.addr, detail)

        def apply() -> None:
            self.busy.add(node)
            stall.thread = threading.Thread(target=sleep, name=f"stall-{node.name}", daemon=True)
            stall.thread.start()

        self.inject(STALL, node.addr, apply, detail)
        return stall

    @contextmanager
    def stalled(self, node: Node, seconds: float) -> Iterator[Stall]:
        """Stall for ``seconds``: the block runs meanwhile, and leaving it waits until
        the node answers again."""
        stall = self.stall(node, seconds)
        try:
            yield stall
        finally:
            stall.wait(seconds + 60)
