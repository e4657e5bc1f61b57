"""Serving the API over aiohttp: the in-process ``ToxiproxyServer`` (its own event loop on
a background thread, for synchronous tests and the harness) and ``main`` (foreground,
until SIGINT/SIGTERM, for ``python -m harness toxiproxy``).

The HTTP server lives on the same event loop as the proxies, so an API call and the
connections it changes never race across threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType

from aiohttp import web

from harness.loops import LoopKind, loop_factory
from harness.toxiproxy.addr import bind
from harness.toxiproxy.api import Api
from harness.toxiproxy.jsonio import ApiError
from harness.toxiproxy.proxy import UpstreamCheck

IDLE_TIMEOUT = 60.0  # as Toxiproxy's server: idle keep-alive connections are closed
CLOSE_TIMEOUT = 5.0


async def _listen(api: Api, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``api`` on one address (a name resolving to several must not get several
    ports); the runner and the port it got."""
    try:
        sock = await bind(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except ApiError as exc:
        raise OSError(exc.message) from None
    runner = web.AppRunner(
        api.app(), access_log=None, keepalive_timeout=IDLE_TIMEOUT, shutdown_timeout=CLOSE_TIMEOUT
    )
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner, sock.getsockname()[1]


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ToxiproxyServer:
    """An embedded Toxiproxy-compatible server running on its own thread.

    Synchronous code starts it, points any Toxiproxy client at ``url`` and stops it;
    ``stop()`` closes every proxy listener and connection and ends the thread.
    ``seed`` makes toxicity rolls, jitter and slicing reproducible; ``populate`` (a JSON
    list of proxies, as for ``/populate``) is loaded before ``start()`` returns.
    ``check_upstream`` vets each upstream before a proxy connects to it: the harness's
    own server passes :func:`harness.guard.check`, so no API call can make it connect to
    an address the harness did not create; a server someone starts for their own use
    (``python -m harness toxiproxy``) connects to whatever upstreams they name.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int | None = None,
        loop: LoopKind = "auto",
        populate: bytes | None = None,
        check_upstream: UpstreamCheck | None = None,
    ) -> None:
        self.check_upstream = check_upstream
        self.host = host
        self.port = port
        self.seed = seed
        self.populate = populate
        self._loop_kind: LoopKind = loop
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> ToxiproxyServer:
        """Listen and serve; returns once the API answers. Raises ``OSError`` if it cannot
        listen, ``ApiError`` if ``populate`` fails."""
        if self._thread is not None:
            raise RuntimeError("ToxiproxyServer already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="toxiproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"toxiproxy server did not start within {timeout}s")
        if self._error is not None:
            error = self._error
            self._thread.join(timeout)
            self._thread = None
            raise error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close all listeners and connections and end the thread; idempotent."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"toxiproxy server thread did not stop within {timeout}s")
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory(self._loop_kind)) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread just ends
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        api = Api(random.Random(self.seed), self.check_upstream)
        runner, self.port = await _listen(api, self.host, self.port)
        try:
            if self.populate is not None:
                async with api.lock:
                    _, error = await api.load(self.populate)
                if error is not None:
                    raise error
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()  # closes the proxies too (the app's cleanup)


def main(
    host: str = "127.0.0.1",
    port: int = 8474,
    *,
    config: str | None = None,
    seed: int | None = None,
    loop: LoopKind = "auto",
) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; 0 on a clean stop, 1 if the API
    port cannot be used or ``config`` (a JSON list of proxies, as for ``/populate``) fails."""
    try:
        data = None if config is None else Path(config).read_bytes()
    except OSError as exc:
        print(f"toxiproxy: cannot read {config}: {exc.strerror}", file=sys.stderr)
        return 1
    server = ToxiproxyServer(host, port, seed=seed, loop=loop, populate=data)
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        server.start()
        print(f"toxiproxy API listening on {server.url}", flush=True)
        stop.wait()
        return 0
    except OSError as exc:
        print(f"toxiproxy: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"toxiproxy: {config}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
