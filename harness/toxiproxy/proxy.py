"""Proxies: a listener per proxy and, per accepted client, a connection to the upstream
carried by two links (see ``link``).

Like Toxiproxy, the end of one direction closes the whole connection: when a link's
stream ends (its source closed, or a toxic closed it), the link closes its destination
socket, which ends the other link in turn.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from harness.errors import HarnessError
from harness.toxiproxy.addr import (
    LISTEN_BACKLOG,
    bind,
    format_addr,
    parse_port,
    resolve_listen,
    split_host_port,
)
from harness.toxiproxy.link import Endpoint, Link
from harness.toxiproxy.toxics import DOWNSTREAM, UPSTREAM, Toxic

log = logging.getLogger("harness.toxiproxy")


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
            host, number = host or "127.0.0.1", parse_port(port)
            if self.proxy.check is not None:
                self.proxy.check(host, number)  # the address guard: nothing sent if refused
            await loop.create_connection(lambda: server, host, number)
        except (OSError, ValueError, HarnessError) as exc:
            refused = isinstance(exc, HarnessError)  # a refusal is a bug to see, not a fault
            log.log(
                logging.WARNING if refused else logging.INFO,
                "proxy %s: cannot reach upstream %s: %s",
                self.proxy.name,
                self.proxy.upstream,
                exc,
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


#: raises for an upstream address the server must not connect to (:mod:`harness.guard`)
UpstreamCheck = Callable[[str, int], None]


class Proxy:
    """A named listener that forwards every connection to ``upstream`` (if ``check``
    lets it: a refused upstream is handled as an unreachable one)."""

    def __init__(
        self,
        name: str,
        listen: str,
        upstream: str,
        rng: random.Random,
        check: UpstreamCheck | None = None,
    ) -> None:
        self.check = check
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
