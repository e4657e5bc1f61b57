"""TCP proxying: a listener per proxy; per accepted client, a connection to the upstream
and two links (upstream: client → server, downstream: server → client).

A link without toxics copies bytes straight from one socket's read callback into the other
socket's transport, with no task, queue or copy in between, so plain proxying costs little.
When toxics are added, the link routes data through a pipeline of stages instead (see
``stream``); changes apply to live connections, as in Toxiproxy.

Like Toxiproxy, the end of one direction closes the whole connection: when a link's
stream ends (its source closed, or a toxic closed it), the link closes its destination
socket, which ends the other link in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import socket
import struct
from collections.abc import Callable
from typing import cast

from harness.toxiproxy.jsonio import ApiError
from harness.toxiproxy.stream import Chunk, Item, Outlet, Stage, now
from harness.toxiproxy.toxics import DOWNSTREAM, UPSTREAM, Toxic

log = logging.getLogger("harness.toxiproxy")

LISTEN_BACKLOG = 1024
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


class Connection:
    """A client connection and its connection to the upstream."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = Endpoint(self)
        self.server: Endpoint | None = None
        self.links: dict[str, Link] = {}
        self.task: asyncio.Task[None] | None = None
        self.finished = False

    def endpoint_made(self, endpoint: Endpoint) -> None:
        if endpoint is self.client:
            self.task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        server = self.server = Endpoint(self)
        try:
            host, port = split_host_port(self.proxy.upstream)
            await loop.create_connection(lambda: server, host or "127.0.0.1", parse_port(port))
        except (OSError, ValueError) as exc:
            log.info(
                "proxy %s: cannot reach upstream %s: %s", self.proxy.name, self.proxy.upstream, exc
            )
            if self.client.transport is not None:
                self.client.transport.close()
            self.endpoint_lost(server)
            return
        if self.finished or self.client.closed:
            if server.transport is not None:
                server.transport.close()
            return
        up = self.links[UPSTREAM] = Link(self, UPSTREAM, self.client, server)
        down = self.links[DOWNSTREAM] = Link(self, DOWNSTREAM, server, self.client)
        for link in (up, down):
            for toxic in self.proxy.chains[link.direction]:
                link.add_stage(toxic, self.proxy.rng)
            link.refresh_fast()
            early, link.source.early = link.source.early, []
            for data in early:
                link.feed(data)
            link.update_flow()

    def endpoint_lost(self, endpoint: Endpoint) -> None:
        endpoint.closed = True
        if not self.links or (self.client.closed and (self.server is None or self.server.closed)):
            self.finish()  # before the links exist, either side going away ends it all

    def rst(self) -> None:
        self.client.set_linger_rst()
        if self.server is not None:
            self.server.set_linger_rst()

    def abort(self) -> None:
        """Drop both sockets now (proxy disabled or deleted), as Toxiproxy does."""
        for endpoint in (self.client, self.server):
            if endpoint is not None and endpoint.transport is not None:
                endpoint.transport.abort()
        self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
        for endpoint in (self.client, self.server):
            transport = endpoint.transport if endpoint is not None else None
            if transport is not None and not self.links and not transport.is_closing():
                transport.abort()  # ended before the links existed: nothing to flush
        for link in self.links.values():
            link.cancel()
        self.proxy.connections.discard(self)


class Proxy:
    """A named listener that forwards every connection to ``upstream``."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random) -> None:
        self.name = name
        self.listen = listen  # the real address once started (port 0 resolved)
        self.upstream = upstream
        self.enabled = False
        self.rng = rng
        self.chains: dict[str, list[Toxic]] = {UPSTREAM: [], DOWNSTREAM: []}
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics()],
        }

    # -- listening --------------------------------------------------------------------

    async def start(self) -> None:
        if self.enabled:
            return
        sock = await bind(self.listen)
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._accept, sock=sock, backlog=LISTEN_BACKLOG
            )
        except BaseException:
            sock.close()
            raise
        self.listen = format_addr(sock.getsockname())
        self.enabled = True

    def _accept(self) -> Endpoint:
        conn = Connection(self)
        self.connections.add(conn)
        return conn.client

    def stop(self) -> None:
        """Close the listener and every connection (``enabled: false``, delete)."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()  # closes the listening socket at once: new clients are refused
            self._server = None
        for conn in list(self.connections):
            conn.abort()

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's update: a new address restarts the proxy (dropping connections)."""
        if await self.differs(listen, upstream):
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()

    async def differs(self, listen: str, upstream: str) -> bool:
        return await resolve_listen(listen) != self.listen or upstream != self.upstream

    # -- toxics -----------------------------------------------------------------------

    def toxics(self) -> list[Toxic]:
        return self.chains[UPSTREAM] + self.chains[DOWNSTREAM]

    def find_toxic(self, name: str) -> Toxic | None:
        return next((t for t in self.toxics() if t.name == name), None)

    def _links(self, direction: str) -> list[Link]:
        links = (conn.links.get(direction) for conn in list(self.connections))
        return [link for link in links if link is not None]

    def add_toxic(self, toxic: Toxic) -> None:
        self.chains[toxic.direction].append(toxic)
        for link in self._links(toxic.direction):
            link.add_stage(toxic, self.rng)

    async def update_toxic(self, toxic: Toxic) -> None:
        chain = self.chains[toxic.direction]
        index = next(i for i, t in enumerate(chain) if t.name == toxic.name)
        chain[index] = toxic
        for link in self._links(toxic.direction):
            await link.update_stage(toxic)

    async def remove_toxic(self, toxic: Toxic) -> None:
        self.chains[toxic.direction].remove(toxic)
        for link in self._links(toxic.direction):
            await link.remove_stage(toxic)

    async def reset_toxics(self) -> None:
        for toxic in self.toxics():
            await self.remove_toxic(toxic)


# -- addresses (Go's net package rules and messages) --------------------------------------


def split_host_port(addr: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: ``host:port``, ``[v6]:port``, ``:port``."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"address {addr}: missing ']' in address")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            problem = "missing port in address" if not rest else "unexpected ']' in address"
            raise ValueError(f"address {addr}: {problem}")
        return host, rest[1:]
    i = addr.rfind(":")
    if i < 0:
        raise ValueError(f"address {addr}: missing port in address")
    host = addr[:i]
    if ":" in host:
        raise ValueError(f"address {addr}: too many colons in address")
    return host, addr[i + 1 :]


def parse_port(port: str) -> int:
    if port.isdigit() and int(port) <= 65535:
        return int(port)
    if port == "":
        return 0
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        raise ValueError(f"lookup tcp/{port}: unknown port") from None


def format_addr(sockaddr: tuple[object, ...]) -> str:
    host, port = str(sockaddr[0]), int(cast(int, sockaddr[1]))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """One address for ``host``; IPv4 first, as Go does for listening."""
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    if not infos:
        raise ValueError(f"lookup {host}: no such host")
    info = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
    return info[0], str(info[4][0])


async def resolve_listen(listen: str) -> str:
    """The address Go's ``ResolveTCPAddr`` gives (":port" for any host), to compare with
    a running proxy's address; an unusable address is a 500, as in Toxiproxy."""
    if listen == "":
        return ":0"
    try:
        host, port_text = split_host_port(listen)
        port = parse_port(port_text)
        if host == "":
            return f":{port}"
        _, ip = await _resolve(host, port)
    except (OSError, ValueError) as exc:
        raise ApiError(str(exc), 500) from None
    return format_addr((ip, port))


async def bind(listen: str) -> socket.socket:
    """A listening socket for ``listen``; errors read like Go's ``net.Listen`` ones."""
    try:
        host, port_text = split_host_port(listen) if listen else ("", "0")
        port = parse_port(port_text)
        candidates = [await _resolve(host, port)] if host else []
    except (OSError, ValueError) as exc:
        raise ApiError(f"listen tcp: {exc}", 500) from None
    if not host:  # any address: dual-stack where possible, as Go listens on [::]
        if socket.has_ipv6:
            candidates.append((socket.AF_INET6, "::"))
        candidates.append((socket.AF_INET, "0.0.0.0"))
    error: OSError | None = None
    for family, ip in candidates:
        try:
            return _listen_socket(family, ip, port)
        except OSError as exc:
            error = error or exc
    assert error is not None
    raise ApiError(f"listen tcp {listen}: bind: {_strerror(error)}", 500)


def _listen_socket(family: socket.AddressFamily, ip: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ip == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((ip, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
