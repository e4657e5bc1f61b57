"""Toxiproxy's REST API: routes, handlers, status codes and JSON shapes (api.go).

Handlers run one at a time (one lock), as the Go server's collection locks make them
appear to, so a test never sees a half-applied change.
"""

from __future__ import annotations

import asyncio
import json
import random
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.toxiproxy import jsonio
from harness.toxiproxy.jsonio import PROXY_EXISTS, PROXY_NOT_FOUND, TOXIC_NOT_FOUND, ApiError
from harness.toxiproxy.proxy import Proxy
from harness.toxiproxy.toxics import new_toxic, updated_toxic

VERSION = "2.12.0+harness"  # the Toxiproxy API level this server speaks
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(value: object, status: int = 200) -> Response:
    return Response(status, jsonio.dumps(value), JSON)


def error_response(error: ApiError) -> Response:
    # Go's http.Error: JSON text, a newline, served as text/plain
    return Response(
        error.status,
        jsonio.dumps(error.to_json()) + b"\n",
        TEXT,
        [("X-Content-Type-Options", "nosniff")],
    )


NOT_FOUND = Response(404, b"404 page not found\n", TEXT, [("X-Content-Type-Options", "nosniff")])
METHOD_NOT_ALLOWED = Response(405)
BROWSER = Response(403, b"User agent not allowed\n", TEXT, [("X-Content-Type-Options", "nosniff")])
NO_CONTENT = Response(204)

Handler = Callable[..., Awaitable[Response]]


class Api:
    """The proxies of one server and the handlers that change them."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.rng = rng or random.Random()
        self._lock = asyncio.Lock()
        # (path pattern, {method: handler}); "{}" matches one non-empty segment
        self._routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = [
            (("reset",), {"POST": self.reset}),
            (("proxies",), {"GET": self.proxy_index, "POST": self.proxy_create}),
            (("populate",), {"POST": self.populate}),
            (
                ("proxies", "{}"),
                {
                    "GET": self.proxy_show,
                    "POST": self.proxy_update,
                    "PATCH": self.proxy_update,
                    "DELETE": self.proxy_delete,
                },
            ),
            (("proxies", "{}", "toxics"), {"GET": self.toxic_index, "POST": self.toxic_create}),
            (
                ("proxies", "{}", "toxics", "{}"),
                {
                    "GET": self.toxic_show,
                    "POST": self.toxic_update,
                    "PATCH": self.toxic_update,
                    "DELETE": self.toxic_delete,
                },
            ),
            (("version",), {"GET": self.version}),
        ]

    async def handle(self, method: str, path: str, body: bytes, user_agent: str = "") -> Response:
        segments = path.split("?", 1)[0].split("/")[1:]
        for pattern, methods in self._routes:
            if len(pattern) != len(segments):
                continue
            args = []
            for want, got in zip(pattern, segments, strict=True):
                if want == "{}" and got:
                    args.append(urllib.parse.unquote(got))
                elif want != got:
                    break
            else:
                handler = methods.get(method)
                if handler is None:
                    return METHOD_NOT_ALLOWED
                if user_agent.startswith("Mozilla/"):  # Toxiproxy refuses browsers (CSRF)
                    return BROWSER
                async with self._lock:
                    try:
                        return await handler(*args, body=body)
                    except ApiError as exc:
                        return error_response(exc)
        return NOT_FOUND

    def _proxy(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    async def close(self) -> None:
        """Stop every proxy: listeners closed, connections dropped."""
        for proxy in self.proxies.values():
            proxy.stop()

    # -- handlers ---------------------------------------------------------------------

    async def version(self, *, body: bytes) -> Response:
        text = f'{{"version": {json.dumps(VERSION)}}}\n'.encode()  # Go's exact text
        return Response(200, text, "application/json;charset=utf-8")

    async def reset(self, *, body: bytes) -> Response:
        for proxy in list(self.proxies.values()):
            await proxy.start()
            await proxy.reset_toxics()
        return NO_CONTENT

    async def proxy_index(self, *, body: bytes) -> Response:
        return json_response({name: self.proxies[name].to_json() for name in sorted(self.proxies)})

    async def proxy_create(self, *, body: bytes) -> Response:
        obj = jsonio.decode(body)
        if not isinstance(obj, dict):
            raise jsonio.value_error(obj, "toxiproxy.Proxy")
        name = jsonio.get_str(obj, "name", "Proxy") or ""
        listen = jsonio.get_str(obj, "listen", "Proxy") or ""
        upstream = jsonio.get_str(obj, "upstream", "Proxy") or ""
        enabled = jsonio.get_bool(obj, "enabled", "Proxy")
        if not name:
            raise jsonio.missing_field("name")
        if not upstream:
            raise jsonio.missing_field("upstream")
        if name in self.proxies:
            raise PROXY_EXISTS
        proxy = Proxy(name, listen, upstream, self.rng)
        if enabled is not False:
            await proxy.start()
        self.proxies[name] = proxy
        return json_response(proxy.to_json(), 201)

    async def populate(self, *, body: bytes) -> Response:
        done: list[Proxy] = []
        try:
            items = jsonio.decode(body)
            if not isinstance(items, list):
                raise jsonio.value_error(items, "[]toxiproxy.Proxy")
            specs = []
            for i, item in enumerate(items, 1):  # all checked before any is created
                if not isinstance(item, dict):
                    raise jsonio.value_error(item, "toxiproxy.Proxy")
                name = jsonio.get_str(item, "name", "Proxy") or ""
                upstream = jsonio.get_str(item, "upstream", "Proxy") or ""
                if not name:
                    raise jsonio.missing_field(f"name at proxy {i}")
                if not upstream:
                    raise jsonio.missing_field(f"upstream at proxy {i}")
                listen = jsonio.get_str(item, "listen", "Proxy") or ""
                enabled = jsonio.get_bool(item, "enabled", "Proxy")
                specs.append((name, listen, upstream, enabled is not False))
            for name, listen, upstream, enabled in specs:
                done.append(await self._add_or_replace(name, listen, upstream, enabled))
        except ApiError as exc:
            return self._populated(done, exc)
        return self._populated(done, None)

    @staticmethod
    def _populated(proxies: list[Proxy], error: ApiError | None) -> Response:
        # Go marshals an empty result slice as null, error fields first
        value: dict[str, object] = error.to_json() if error else {}
        value["proxies"] = [p.to_json() for p in proxies] or None
        return json_response(value, error.status if error else 201)

    async def _add_or_replace(self, name: str, listen: str, upstream: str, enabled: bool) -> Proxy:
        existing = self.proxies.get(name)
        if existing is not None:
            if not await existing.differs(listen, upstream):
                return existing  # untouched, toxics and all
            existing.stop()
        proxy = Proxy(name, listen, upstream, self.rng)
        if enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return proxy

    async def proxy_show(self, name: str, *, body: bytes) -> Response:
        return json_response(self._proxy(name).to_json())

    async def proxy_update(self, name: str, *, body: bytes) -> Response:
        proxy = self._proxy(name)
        obj = jsonio.decode(body)
        if not isinstance(obj, dict):
            raise jsonio.value_error(obj, "toxiproxy.Proxy")
        listen = jsonio.get_str(obj, "listen", "Proxy")
        upstream = jsonio.get_str(obj, "upstream", "Proxy")
        enabled = jsonio.get_bool(obj, "enabled", "Proxy")
        await proxy.update(
            proxy.listen if listen is None else listen,
            proxy.upstream if upstream is None else upstream,
            proxy.enabled if enabled is None else enabled,
        )
        return json_response(proxy.to_json())

    async def proxy_delete(self, name: str, *, body: bytes) -> Response:
        proxy = self._proxy(name)
        proxy.stop()
        del self.proxies[name]
        return NO_CONTENT

    async def toxic_index(self, name: str, *, body: bytes) -> Response:
        return json_response([t.to_json() for t in self._proxy(name).toxics()])

    async def toxic_create(self, name: str, *, body: bytes) -> Response:
        proxy = self._proxy(name)
        toxic = new_toxic(body, lambda n: proxy.find_toxic(n) is not None)
        proxy.add_toxic(toxic)
        return json_response(toxic.to_json())  # 200, not 201: as Toxiproxy answers

    async def toxic_show(self, name: str, toxic_name: str, *, body: bytes) -> Response:
        proxy = self._proxy(name)
        toxic = proxy.find_toxic(toxic_name)
        if toxic is None:
            raise TOXIC_NOT_FOUND
        return json_response(toxic.to_json())

    async def toxic_update(self, name: str, toxic_name: str, *, body: bytes) -> Response:
        proxy = self._proxy(name)
        toxic = proxy.find_toxic(toxic_name)
        if toxic is None:
            raise TOXIC_NOT_FOUND
        new = updated_toxic(toxic, body)
        await proxy.update_toxic(new)
        return json_response(new.to_json())

    async def toxic_delete(self, name: str, toxic_name: str, *, body: bytes) -> Response:
        proxy = self._proxy(name)
        toxic = proxy.find_toxic(toxic_name)
        if toxic is None:
            raise TOXIC_NOT_FOUND
        await proxy.remove_toxic(toxic)
        return NO_CONTENT
