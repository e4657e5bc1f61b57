"""Serving the API: a small HTTP/1.1 server, the in-process ``ToxiproxyServer`` (its own
event loop on a background thread, for synchronous tests and the harness) and ``main``
(foreground, until SIGINT/SIGTERM, for ``python -m harness toxiproxy``).

The HTTP server lives on the same event loop as the proxies, so an API call and the
connections it changes never race across threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import random
import signal
import sys
import threading
import time
from email.utils import formatdate
from pathlib import Path
from types import TracebackType

from harness.loops import LoopKind, loop_factory
from harness.toxiproxy.api import Api, Response
from harness.toxiproxy.jsonio import ApiError
from harness.toxiproxy.proxy import bind

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT = 60.0  # as Toxiproxy's server: idle keep-alive connections are closed
READ_TIMEOUT = 15.0
CLOSE_TIMEOUT = 5.0


class _BadRequest(Exception):
    pass


class HttpServer:
    """HTTP/1.1 (keep-alive, Content-Length or chunked bodies, 100-continue) for ``Api``."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, host: str, port: int) -> None:
        """Listen on one address (a name resolving to several must not get several ports)."""
        try:
            sock = await bind(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        except ApiError as exc:
            raise OSError(exc.message) from None
        self._server = await asyncio.start_server(self._serve_client, sock=sock, limit=MAX_HEAD)
        self.port = sock.getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients.values()):
            writer.close()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=CLOSE_TIMEOUT)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except _BadRequest as exc:
            with contextlib.suppress(ConnectionError):
                await _write(writer, Response(400, f"{exc}\n".encode(), "text/plain"), True)
        finally:
            del self._clients[task]
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; whether the connection stays open for another."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except asyncio.LimitOverrunError:
            raise _BadRequest("request header too large") from None
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest("malformed header line")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = (
            "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        )
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await asyncio.wait_for(_read_body(reader, headers), READ_TIMEOUT)
        response = await self.api.handle(method, target, body, headers.get("user-agent", ""))
        await _write(writer, response, not keep_alive)
        return keep_alive


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("malformed chunk size") from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise _BadRequest("request body too large")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise _BadRequest("malformed Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise _BadRequest("request body too large")
    return await reader.readexactly(length) if length else b""


async def _write(writer: asyncio.StreamWriter, response: Response, close: bool) -> None:
    status = http.HTTPStatus(response.status)
    head = [f"HTTP/1.1 {status.value} {status.phrase}", f"Date: {formatdate(usegmt=True)}"]
    if response.content_type:
        head.append(f"Content-Type: {response.content_type}")
    head.extend(f"{name}: {value}" for name, value in response.headers)
    if response.status != 204:
        head.append(f"Content-Length: {len(response.body)}")
    if close:
        head.append("Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()


async def _shutdown(api: Api, http_server: HttpServer) -> None:
    """Close listeners and connections, and wait (bounded) until their sockets are gone,
    so nothing outlives ``stop()``."""
    endpoints = [
        ep
        for proxy in api.proxies.values()
        for conn in proxy.connections
        for ep in (conn.client, conn.server)
        if ep is not None and ep.transport is not None  # a socket was made: wait for its end
    ]
    await api.close()
    await http_server.close()
    deadline = time.monotonic() + CLOSE_TIMEOUT
    while any(not ep.closed for ep in endpoints) and time.monotonic() < deadline:
        await asyncio.sleep(0)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ToxiproxyServer:
    """An embedded Toxiproxy-compatible server running on its own thread.

    Synchronous code starts it, points any Toxiproxy client at ``url`` and stops it;
    ``stop()`` closes every proxy listener and connection and ends the thread.
    ``seed`` makes toxicity rolls, jitter and slicing reproducible.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int | None = None,
        loop: LoopKind = "auto",
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
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
        """Listen and serve; returns once the API answers (raises if it cannot listen)."""
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
        api = Api(random.Random(self.seed))
        http_server = HttpServer(api)
        await http_server.start(self.host, self.port)
        self.port = http_server.port
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await _shutdown(api, http_server)


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

    async def serve() -> int:
        api = Api(random.Random(seed))
        http_server = HttpServer(api)
        try:
            await http_server.start(host, port)
        except OSError as exc:
            print(f"toxiproxy: {exc}", file=sys.stderr)
            return 1
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(sig, stop.set)
        try:
            if config is not None:
                try:
                    data = Path(config).read_bytes()
                except OSError as exc:
                    print(f"toxiproxy: cannot read {config}: {exc.strerror}", file=sys.stderr)
                    return 1
                result = await api.handle("POST", "/populate", data)
                if result.status != 201:
                    print(f"toxiproxy: {config}: {result.body.decode().strip()}", file=sys.stderr)
                    return 1
            print(f"toxiproxy API listening on {_url(host, http_server.port)}", flush=True)
            await stop.wait()
            return 0
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                running.remove_signal_handler(sig)
            await _shutdown(api, http_server)

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(serve())
