"""The sockets of a proxied connection and the two links between them (upstream:
client → server, downstream: server → client).

A link without toxics copies bytes straight from one socket's read callback into the other
socket's transport, with no task, queue or copy in between, so plain proxying costs little.
When toxics are added, the link routes data through a pipeline of stages instead (see
``stream``); changes apply to live connections, as in Toxiproxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from harness.toxiproxy.stream import Chunk, Item, Outlet, Stage, now
from harness.toxiproxy.toxics import Toxic

if TYPE_CHECKING:
    from harness.toxiproxy.proxy import Connection

_LINGER_RST = struct.pack("ii", 1, 0)


class Endpoint(asyncio.Protocol):
    """One socket of a proxied connection: the client's, or the one to the upstream."""

    __slots__ = (
        "closed",
        "conn",
        "early",
        "fast_write",
        "read_paused",
        "reader",
        "transport",
        "waiters",
        "write_paused",
        "writer",
    )

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.reader: Link | None = None  # the link that reads from this socket
        self.writer: Link | None = None  # the link that writes to this socket
        # Set while the reading link has no toxics: the other socket's write, called
        # straight from data_received.
        self.fast_write: Callable[[bytes], None] | None = None
        self.read_paused = True
        self.write_paused = False
        self.closed = False
        self.early: list[bytes] = []  # data read before the links existed
        self.waiters: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()  # until both sockets and links exist
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.endpoint_made(self)

    def data_received(self, data: bytes) -> None:
        write = self.fast_write
        if write is not None:
            write(data)
        elif self.reader is not None:
            self.reader.feed(data)
        else:
            self.early.append(data)

    def eof_received(self) -> bool:
        if self.reader is not None:
            self.reader.feed_eof()
        return True  # stay open for writing: data still in the other link gets delivered

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fast_write = None
        self._wake()
        if self.reader is not None:
            self.reader.feed_eof()
        if self.writer is not None:
            self.writer.dest_lost()
        self.conn.endpoint_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.writer is not None:
            self.writer.update_flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()
        if self.writer is not None:
            self.writer.update_flow()

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_writable(self) -> None:
        if self.closed or not self.write_paused:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        await fut

    def set_reading(self, on: bool) -> None:
        if self.closed or self.transport is None or on == (not self.read_paused):
            return
        self.read_paused = not on
        if on:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()

    def set_linger_rst(self) -> None:
        """Make closing this socket send a RST (SO_LINGER 0), as reset_peer does."""
        if self.transport is None or self.closed:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


class Sink:
    """The end of a link: writes to the destination socket; end of stream closes it."""

    __slots__ = ("closed", "dest", "link")

    def __init__(self, link: Link, dest: Endpoint) -> None:
        self.link = link
        self.dest = dest
        self.closed = False

    def put(self, item: Item) -> None:
        if self.closed:
            return
        transport = self.dest.transport
        if item is None:
            self.closed = True
            self.link.refresh_fast()
            if transport is not None:
                transport.close()  # flushes what is buffered, then closes
        elif transport is not None:
            transport.write(item.data)

    def writable(self) -> bool:
        return self.closed or not self.dest.write_paused

    async def wait_writable(self) -> None:
        await self.dest.wait_writable()


class Link:
    """One direction of a connection: source socket → toxic stages → destination socket."""

    def __init__(self, conn: Connection, direction: str, source: Endpoint, dest: Endpoint) -> None:
        self.conn = conn
        self.direction = direction
        self.source = source
        self.dest = dest
        self.sink = Sink(self, dest)
        self.stages: list[Stage] = []
        self.eof = False
        source.reader = self
        dest.writer = self

    @property
    def head(self) -> Outlet:
        return self.stages[0].inbox if self.stages else self.sink

    def refresh_fast(self) -> None:
        """Use the direct path exactly while there are no stages and the sink is open."""
        transport = self.dest.transport
        direct = not self.stages and not self.sink.closed and transport is not None
        self.source.fast_write = transport.write if direct and transport else None

    def feed(self, data: bytes) -> None:
        if self.eof:
            return
        head = self.head
        head.put(Chunk(data, now()))
        if not head.writable():
            self.update_flow()

    def feed_eof(self) -> None:
        if not self.eof:
            self.eof = True
            self.head.put(None)

    def dest_lost(self) -> None:
        self.sink.closed = True
        self.refresh_fast()

    def update_flow(self) -> None:
        """Read from the source only while the first stage (or the socket) takes data."""
        self.source.set_reading(self.head.writable())

    def add_stage(self, toxic: Toxic, rng: random.Random) -> None:
        stage = Stage(toxic, self.sink, rng, on_space=self.update_flow, on_reset=self.conn.rst)
        if self.stages:
            self.stages[-1].output = stage.inbox
        self.stages.append(stage)
        self.refresh_fast()
        stage.start()
        self.update_flow()

    def _stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.toxic.name == name), None)

    async def update_stage(self, toxic: Toxic) -> None:
        stage = self._stage(toxic.name)
        if stage is None:
            return
        await stage.interrupt()
        stage.flush_held()  # e.g. latency lets its delayed chunk go, as Toxiproxy does
        stage.toxic = toxic
        if not self.conn.finished:
            stage.start()

    async def remove_stage(self, toxic: Toxic) -> None:
        stage = self._stage(toxic.name)
        if stage is None:
            return
        await stage.interrupt()
        if toxic.type.closes_on_removal and stage.active:
            stage.close()  # timeout: its connection ends with it, as in Toxiproxy
        else:
            stage.flush_held()
            for item in stage.inbox.drain():
                stage.output.put(item)
        index = self.stages.index(stage)
        if index > 0:
            self.stages[index - 1].output = stage.output
        del self.stages[index]
        stage.inbox.wake_writers()  # whoever waited on the removed inbox looks again
        self.refresh_fast()
        self.update_flow()

    def cancel(self) -> None:
        for stage in self.stages:
            stage.cancel()
