"""A TCP proxy on an event loop of its own (a thread), for the tests that put a lying or
lossy link in front of a real server: one connection to ``upstream`` per client, and a
subclass's :meth:`AsyncProxy.relay` decides what passes. asyncio rather than a proxy
library: the lies need whole protocol messages, which a byte-level proxy does not see.

A plain module, imported by the test modules next to it (see ``sandbox.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


class AsyncProxy:
    """Listens on 127.0.0.1 (:attr:`address`); every accepted client gets a connection
    to ``upstream`` and :meth:`relay` between the two, both closed when it returns."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.links = 0  # client connections relayed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._writers: set[Writer] = set()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        self.address: tuple[str, int] = self._server.sockets[0].getsockname()[:2]

    async def relay(self, client_r: Reader, client_w: Writer, up_r: Reader, up_w: Writer) -> None:
        raise NotImplementedError

    async def _serve(self, client_r: Reader, client_w: Writer) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self.links += 1
        self._writers |= {client_w, up_w}
        try:
            await self.relay(client_r, client_w, up_r, up_w)
        except OSError:
            pass  # either side went away: the link ends, as a real one would
        finally:
            for w in (client_w, up_w):
                self._writers.discard(w)
                w.close()

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for w in list(self._writers):
                w.close()

        with contextlib.suppress(Exception):  # teardown goes on
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
