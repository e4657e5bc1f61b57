"""The pipeline a link's data flows through when it has toxics.

Like Toxiproxy, each toxic on a link runs as its own task (a "stage") between two
channels, so toxics can be added, changed and removed while data flows: a stage is
interrupted by cancelling its task, and whatever data it held is passed on, never dropped.
Channels are bounded by bytes, so a slow toxic (bandwidth) pushes back on the sender
through TCP instead of buffering without limit.

``None`` in a channel is end of stream: the stage that reads it closes its own output.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.toxiproxy.toxics import Toxic

log = logging.getLogger("harness.toxiproxy")

CHAN_LIMIT = 256 * 1024  # bytes a channel holds before its writer waits


class Chunk:
    """Bytes read from a socket and when they were read (latency counts from then)."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes | memoryview, ts: float) -> None:
        self.data = data
        self.ts = ts

    def __repr__(self) -> str:
        return f"Chunk({len(self.data)} bytes)"


Item = Chunk | None  # None: end of stream


class Outlet(Protocol):
    """Where a stage sends data: the next stage's inbox, or the link's socket writer."""

    def put(self, item: Item) -> None:
        """Take ``item`` now, whatever the fill level (the writer checked ``writable``)."""

    def writable(self) -> bool:
        """Whether a writer may put more now."""

    async def wait_writable(self) -> None:
        """Return once ``writable`` may have become true (callers check again)."""


class Chan:
    """A FIFO of chunks between two stages, bounded by bytes."""

    __slots__ = ("_getter", "_writers", "items", "limit", "nbytes", "on_space")

    def __init__(self, limit: int = CHAN_LIMIT, on_space: Callable[[], None] | None = None) -> None:
        self.items: collections.deque[Item] = collections.deque()
        self.nbytes = 0
        self.limit = limit
        self.on_space = on_space
        self._getter: asyncio.Future[None] | None = None
        self._writers: list[asyncio.Future[None]] = []

    def put(self, item: Item) -> None:
        self.items.append(item)
        if item is not None:
            self.nbytes += len(item.data)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def writable(self) -> bool:
        return self.nbytes < self.limit

    async def wait_writable(self) -> None:
        if self.writable():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writers.append(fut)
        try:
            await fut
        finally:
            with contextlib.suppress(ValueError):
                self._writers.remove(fut)

    async def get(self) -> Item:
        """Wait for the next item; cancelling the wait loses nothing."""
        while not self.items:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getter = fut
            try:
                await fut
            finally:
                self._getter = None
        item = self.items.popleft()
        if item is not None:
            was_full = self.nbytes >= self.limit
            self.nbytes -= len(item.data)
            if was_full and self.nbytes < self.limit:
                self.wake_writers()
        return item

    def drain(self) -> list[Item]:
        items = list(self.items)
        self.items.clear()
        self.nbytes = 0
        self.wake_writers()
        return items

    def wake_writers(self) -> None:
        """Let waiting writers look again (also used when this channel leaves the chain)."""
        for fut in self._writers:
            if not fut.done():
                fut.set_result(None)
        if self.on_space is not None:
            self.on_space()


Pipe = Callable[["Stage", Mapping[str, int]], Awaitable[None]]


class Stage:
    """One toxic running on one link: reads ``inbox``, writes ``output``.

    ``held`` is the data the running toxic has taken from its inbox but not yet passed on;
    whoever interrupts the stage forwards it, so changing toxics never loses bytes.
    ``state`` survives interruptions (``limit_data`` counts bytes across updates).
    """

    def __init__(
        self,
        toxic: Toxic,
        output: Outlet,
        rng: random.Random,
        on_space: Callable[[], None] | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self.toxic = toxic
        self.inbox = Chan(toxic.type.buffer_bytes, on_space)
        self.output: Outlet = output
        self.rng = rng
        self.on_reset = on_reset
        self.held: list[Item] = []
        self.state: dict[str, int] = {}
        self.active = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    # -- used by toxics -------------------------------------------------------------------

    async def get(self) -> Item:
        return await self.inbox.get()

    async def emit(self, chunk: Chunk) -> None:
        """Pass ``chunk`` on once the output has room (the toxic keeps it in ``held``)."""
        while True:
            out = self.output  # re-read: the chain may be rewired while we wait
            if out.writable():
                out.put(chunk)
                return
            await out.wait_writable()

    def close(self) -> None:
        """End this link's stream here: everything after sees end of stream."""
        if not self.closed:
            self.closed = True
            self.held = []
            self.output.put(None)

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN (``reset_peer``)."""
        if self.on_reset is not None:
            self.on_reset()
        self.close()

    # -- used by the link -----------------------------------------------------------------

    def start(self) -> None:
        """Run the toxic, or a pass-through when the toxicity roll says no: like Toxiproxy,
        the roll happens each time the toxic (re)starts on a link."""
        if self.closed:
            return
        self.active = self.rng.random() < self.toxic.toxicity
        pipe = self.toxic.type.pipe if self.active else pipe_noop
        self.task = asyncio.get_running_loop().create_task(self._run(pipe))

    async def _run(self, pipe: Pipe) -> None:
        try:
            await pipe(self, self.toxic.attributes)
        except asyncio.CancelledError:
            raise
        except Exception:  # a toxic bug must not leave the link hanging
            log.exception("toxic %s failed; closing its link", self.toxic.name)
            self.close()

    async def interrupt(self) -> None:
        """Stop the running toxic and wait until it has stopped."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # unlike awaiting it, keeps our own cancellation

    def flush_held(self) -> None:
        held, self.held = self.held, []
        for item in held:
            self.output.put(item)
        if None in held:
            self.closed = True

    def cancel(self) -> None:
        """Stop without waiting (the connection is going away)."""
        if self.task is not None:
            self.task.cancel()
            self.task = None


def now() -> float:
    return time.monotonic()


async def pipe_noop(stage: Stage, attrs: Mapping[str, int]) -> None:
    """Pass everything through: a toxic whose toxicity roll failed, or type ``noop``."""
    while True:
        chunk = await stage.get()
        if chunk is None:
            stage.close()
            return
        stage.held = [chunk]
        await stage.emit(chunk)
        stage.held = []
