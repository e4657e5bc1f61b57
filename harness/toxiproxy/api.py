"""Toxiproxy's REST API (2.x) as an aiohttp application: the routes, status codes and JSON
shapes of Toxiproxy's api.go, because clients are written against the real server.

Handlers run one at a time (one lock), as the Go server's collection locks make them
appear to, so a test never sees a half-applied change. They run on the proxies' own event
loop, so an API call and the connections it changes never race across threads.
"""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from harness.toxiproxy import jsonio
from harness.toxiproxy.jsonio import PROXY_EXISTS, PROXY_NOT_FOUND, TOXIC_NOT_FOUND, ApiError
from harness.toxiproxy.proxy import Proxy, UpstreamCheck
from harness.toxiproxy.toxics import Toxic, new_toxic, updated_toxic

VERSION = "2.12.0+harness"  # the Toxiproxy API level this server speaks
MAX_BODY = 16 * 1024 * 1024
CLOSE_TIMEOUT = 5.0  # how long closing waits for the proxies' sockets


def json_response(value: object, status: int = 200) -> web.Response:
    return web.Response(body=jsonio.dumps(value), status=status, content_type="application/json")


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse browsers (Toxiproxy's CSRF guard), serialize handlers, report ``ApiError``."""
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(status=403, text="User agent not allowed")
    async with request.app[API].lock:
        try:
            return await handler(request)
        except ApiError as exc:
            return json_response(exc.to_json(), exc.status)


async def _object(request: web.Request) -> dict[str, object]:
    value = jsonio.decode(await request.read())
    if not isinstance(value, dict):
        raise jsonio.expected("a JSON object (a proxy)", value)
    return value


class Api:
    """The proxies of one server and the handlers that change them."""

    def __init__(
        self, rng: random.Random | None = None, check_upstream: UpstreamCheck | None = None
    ) -> None:
        self.check_upstream = check_upstream
        self.proxies: dict[str, Proxy] = {}
        self.rng = rng or random.Random()
        self.lock = asyncio.Lock()

    def app(self) -> web.Application:
        """The aiohttp application serving this API (404 and 405 come from its router)."""
        app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
        app[API] = self
        app.on_cleanup.append(lambda _: self.close())
        proxy, toxic = "/proxies/{proxy}", "/proxies/{proxy}/toxics/{toxic}"
        app.router.add_routes(
            [
                web.post("/reset", self.reset),
                web.get("/proxies", self.proxy_index),
                web.post("/proxies", self.proxy_create),
                web.post("/populate", self.populate),
                web.get(proxy, self.proxy_show),
                web.post(proxy, self.proxy_update),
                web.patch(proxy, self.proxy_update),
                web.delete(proxy, self.proxy_delete),
                web.get(f"{proxy}/toxics", self.toxic_index),
                web.post(f"{proxy}/toxics", self.toxic_create),
                web.get(toxic, self.toxic_show),
                web.post(toxic, self.toxic_update),
                web.patch(toxic, self.toxic_update),
                web.delete(toxic, self.toxic_delete),
                web.get("/version", self.version),
            ]
        )
        return app

    async def close(self) -> None:
        """Stop every proxy, and wait (bounded) until their sockets are gone, so nothing
        outlives the server."""
        endpoints = [
            ep
            for proxy in self.proxies.values()
            for conn in proxy.connections
            for ep in (conn.client, conn.server)
            if ep is not None and ep.transport is not None  # a socket was made: wait for its end
        ]
        for proxy in self.proxies.values():
            proxy.stop()
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while any(not ep.closed for ep in endpoints) and time.monotonic() < deadline:
            await asyncio.sleep(0)

    def _proxy(self, request: web.Request) -> Proxy:
        proxy = self.proxies.get(request.match_info["proxy"])
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    def _toxic(self, request: web.Request) -> tuple[Proxy, Toxic]:
        proxy = self._proxy(request)
        toxic = proxy.find_toxic(request.match_info["toxic"])
        if toxic is None:
            raise TOXIC_NOT_FOUND
        return proxy, toxic

    # -- proxies ----------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        return json_response({"version": VERSION})

    async def reset(self, request: web.Request) -> web.Response:
        for proxy in list(self.proxies.values()):
            await proxy.start()
            await proxy.reset_toxics()
        return web.Response(status=204)

    async def proxy_index(self, request: web.Request) -> web.Response:
        return json_response({name: self.proxies[name].to_json() for name in sorted(self.proxies)})

    async def proxy_create(self, request: web.Request) -> web.Response:
        obj = await _object(request)
        name = jsonio.get_str(obj, "name") or ""
        listen = jsonio.get_str(obj, "listen") or ""
        upstream = jsonio.get_str(obj, "upstream") or ""
        enabled = jsonio.get_bool(obj, "enabled")
        if not name:
            raise jsonio.missing_field("name")
        if not upstream:
            raise jsonio.missing_field("upstream")
        if name in self.proxies:
            raise PROXY_EXISTS
        proxy = Proxy(name, listen, upstream, self.rng, self.check_upstream)
        if enabled is not False:
            await proxy.start()
        self.proxies[name] = proxy
        return json_response(proxy.to_json(), 201)

    async def populate(self, request: web.Request) -> web.Response:
        proxies, error = await self.load(await request.read())
        # error fields first; Go marshals an empty result slice as null
        value: dict[str, object] = error.to_json() if error else {}
        value["proxies"] = [p.to_json() for p in proxies] or None
        return json_response(value, error.status if error else 201)

    async def load(self, body: bytes) -> tuple[list[Proxy], ApiError | None]:
        """``/populate``: create or replace the listed proxies (the caller holds ``lock``);
        the proxies done, and the error that stopped the rest, if any."""
        done: list[Proxy] = []
        try:
            items = jsonio.decode(body)
            if not isinstance(items, list):
                raise jsonio.expected("a JSON array of proxies", items)
            specs = []
            for i, item in enumerate(items, 1):  # all checked before any is created
                if not isinstance(item, dict):
                    raise jsonio.expected(f"a JSON object at proxy {i}", item)
                name = jsonio.get_str(item, "name") or ""
                upstream = jsonio.get_str(item, "upstream") or ""
                if not name:
                    raise jsonio.missing_field(f"name at proxy {i}")
                if not upstream:
                    raise jsonio.missing_field(f"upstream at proxy {i}")
                listen = jsonio.get_str(item, "listen") or ""
                enabled = jsonio.get_bool(item, "enabled")
                specs.append((name, listen, upstream, enabled is not False))
            for name, listen, upstream, enabled in specs:
                done.append(await self._add_or_replace(name, listen, upstream, enabled))
        except ApiError as exc:
            return done, exc
        return done, None

    async def _add_or_replace(self, name: str, listen: str, upstream: str, enabled: bool) -> Proxy:
        existing = self.proxies.get(name)
        if existing is not None:
            if not await existing.differs(listen, upstream):
                return existing  # untouched, toxics and all
            existing.stop()
        proxy = Proxy(name, listen, upstream, self.rng, self.check_upstream)
        if enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return proxy

    async def proxy_show(self, request: web.Request) -> web.Response:
        return json_response(self._proxy(request).to_json())

    async def proxy_update(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        obj = await _object(request)
        listen = jsonio.get_str(obj, "listen")
        upstream = jsonio.get_str(obj, "upstream")
        enabled = jsonio.get_bool(obj, "enabled")
        await proxy.update(
            proxy.listen if listen is None else listen,
            proxy.upstream if upstream is None else upstream,
            proxy.enabled if enabled is None else enabled,
        )
        return json_response(proxy.to_json())

    async def proxy_delete(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        proxy.stop()
        del self.proxies[proxy.name]
        return web.Response(status=204)

    # -- toxics -----------------------------------------------------------------------

    async def toxic_index(self, request: web.Request) -> web.Response:
        return json_response([t.to_json() for t in self._proxy(request).toxics()])

    async def toxic_create(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        toxic = new_toxic(await request.read(), lambda n: proxy.find_toxic(n) is not None)
        proxy.add_toxic(toxic)
        return json_response(toxic.to_json())  # 200, not 201: as Toxiproxy answers

    async def toxic_show(self, request: web.Request) -> web.Response:
        return json_response(self._toxic(request)[1].to_json())

    async def toxic_update(self, request: web.Request) -> web.Response:
        proxy, toxic = self._toxic(request)
        new = updated_toxic(toxic, await request.read())
        await proxy.update_toxic(new)
        return json_response(new.to_json())

    async def toxic_delete(self, request: web.Request) -> web.Response:
        proxy, toxic = self._toxic(request)
        await proxy.remove_toxic(toxic)
        return web.Response(status=204)


API = web.AppKey("api", Api)
