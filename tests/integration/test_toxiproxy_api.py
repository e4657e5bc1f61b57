"""The embedded Toxiproxy-compatible server, checked the way Toxiproxy itself behaves.

(a) raw HTTP against the documented API: status codes, JSON shapes, error cases;
(b) toxiproxy-python, an existing client, driving it;
(c) real TCP through its proxies to a real redis-server: every toxic's effect (timing
    asserts lower bounds only), disabling, reset, toxics changed under live traffic;
(d) the embedded server itself: clean stop, start errors, ``main``.

With ``TOXIPROXY_URL`` set (e.g. ``http://127.0.0.1:8474``), (a) to (c) run against that
server instead, which must be a real Toxiproxy 2.x on this machine (upstreams are
127.0.0.1 ports); (d) is skipped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from harness.ports import PortLease
from harness.toxiproxy import VERSION, ToxiproxyServer
from harness.wait import wait_for

EXTERNAL = os.environ.get("TOXIPROXY_URL")
embedded_only = pytest.mark.skipif(bool(EXTERNAL), reason="checks the embedded server itself")


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def toxiproxy_url() -> Iterator[str]:
    if EXTERNAL:
        yield EXTERNAL.rstrip("/")
        return
    server = ToxiproxyServer(seed=1234)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
    assert not server.running


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Raw HTTP to the API. Names carry a per-test prefix; the test's proxies are deleted
    afterwards, so tests can share one (possibly external) server."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 8474
        self.prefix = f"t{uuid.uuid4().hex[:8]}"

    def name(self, what: str) -> str:
        return f"{self.prefix}_{what}"

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            data = raw if raw is not None else None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def create(self, what: str, upstream: int | str, **fields: object) -> dict[str, Any]:
        upstream = f"127.0.0.1:{upstream}" if isinstance(upstream, int) else upstream
        spec = {"name": self.name(what), "listen": "127.0.0.1:0", "upstream": upstream, **fields}
        reply = self.call("POST", "/proxies", spec)
        assert reply.status == 201, reply.body
        return dict(reply.json)

    def toxic(self, proxy: dict[str, Any], **toxic: object) -> dict[str, Any]:
        reply = self.call("POST", f"/proxies/{proxy['name']}/toxics", toxic)
        assert reply.status == 200, reply.body
        return dict(reply.json)

    def patch(self, proxy: dict[str, Any], **fields: object) -> dict[str, Any]:
        reply = self.call("PATCH", f"/proxies/{proxy['name']}", fields)
        assert reply.status == 200, reply.body
        return dict(reply.json)

    def cleanup(self) -> None:
        for name in self.call("GET", "/proxies").json:
            if name.startswith(self.prefix):
                self.call("DELETE", f"/proxies/{name}")


@pytest.fixture
def api(toxiproxy_url: str) -> Iterator[Api]:
    client = Api(toxiproxy_url)
    yield client
    client.cleanup()


def port_of(proxy: dict[str, Any]) -> int:
    return int(proxy["listen"].rsplit(":", 1)[1])


def error(reply: Reply) -> dict[str, Any]:
    value = reply.json
    assert set(value) >= {"error", "status"} and value["status"] == reply.status, value
    return dict(value)


class Resp:
    """A raw RESP connection: tests see exactly the bytes (and the closes) the proxy delivers."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, *args: str | bytes) -> None:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed by the proxy")
        self.buf += data

    def reply(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, rest = self.buf.partition(b"\r\n")
        if line.startswith(b"$") and int(line[1:]) >= 0:
            size = int(line[1:])
            while len(rest) < size + 2:
                self._fill()
                line, _, rest = self.buf.partition(b"\r\n")
            self.buf = rest[size + 2 :]
            return rest[:size]
        self.buf = rest
        return line

    def cmd(self, *args: str | bytes) -> bytes:
        self.send(*args)
        return self.reply()

    def read_until_closed(self, timeout: float = 5.0) -> tuple[bytes, str]:
        """Everything until the proxy closes: the data and "eof" or "reset"."""
        data, self.buf = self.buf, b""
        self.sock.settimeout(timeout)
        try:
            while chunk := self.sock.recv(1 << 20):
                data += chunk
        except ConnectionResetError:
            return data, "reset"
        return data, "eof"

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def resp(port: int, timeout: float = 5.0) -> Iterator[Resp]:
    conn = Resp(port, timeout)
    try:
        yield conn
    finally:
        conn.close()


def pong(port: int) -> tuple[bool, str]:
    with resp(port, timeout=2) as conn:
        reply = conn.cmd("PING")
    return reply == b"+PONG", repr(reply)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture(scope="module")
def ports() -> Iterator[PortLease]:
    lease = PortLease()
    yield lease
    lease.release()


@pytest.fixture(scope="module")
def redis_port(ports: PortLease) -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH")
    (port,) = ports.claim(1)
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--daemonize", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: pong(port), 10, "redis-server answers PING")
        yield port
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def dead_port(ports: PortLease) -> int:
    """A port nothing listens on (claimed, so nothing else will)."""
    (port,) = ports.claim(1)
    return port


@pytest.fixture
def proxy(api: Api, redis_port: int) -> dict[str, Any]:
    created = api.create("redis", redis_port)
    wait_for(lambda: pong(port_of(created)), 5, "PING through the proxy")
    return created


# -- (a) the REST API over raw HTTP ---------------------------------------------------------


def test_version(api: Api) -> None:
    reply = api.call("GET", "/version")
    assert reply.status == 200
    if "json" in reply.headers.get("Content-Type", ""):
        assert isinstance(reply.json["version"], str)
    if not EXTERNAL:
        assert reply.json == {"version": VERSION}


def test_create_answers_201_with_the_real_port(api: Api, dead_port: int) -> None:
    reply = api.call(
        "POST",
        "/proxies",
        {"name": api.name("p"), "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{dead_port}"},
    )
    assert reply.status == 201
    assert reply.headers["Content-Type"].startswith("application/json")
    created = reply.json
    assert created == {
        "name": api.name("p"),
        "listen": created["listen"],
        "upstream": f"127.0.0.1:{dead_port}",
        "enabled": True,
        "toxics": [],
    }
    assert created["listen"].startswith("127.0.0.1:") and port_of(created) != 0
    assert api.call("GET", f"/proxies/{api.name('p')}").json == created


def test_create_errors(api: Api, dead_port: int) -> None:
    spec = {"name": api.name("p"), "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{dead_port}"}
    assert api.call("POST", "/proxies", spec).status == 201
    duplicate = api.call("POST", "/proxies", spec)
    assert error(duplicate) == {"error": "proxy already exists", "status": 409}
    no_name = api.call("POST", "/proxies", {"upstream": "127.0.0.1:1"})
    assert error(no_name) == {"error": "missing required field: name", "status": 400}
    no_upstream = api.call("POST", "/proxies", {"name": api.name("q")})
    assert error(no_upstream) == {"error": "missing required field: upstream", "status": 400}
    for raw in (b"", b"{", b"not json", b'{"name": 5}'):
        bad = api.call("POST", "/proxies", raw=raw)
        assert bad.status == 400 and error(bad)["error"].startswith("bad request body"), raw


def test_create_disabled_does_not_listen(api: Api, dead_port: int) -> None:
    created = api.create("off", dead_port, enabled=False)
    assert created["enabled"] is False
    assert created["listen"] == "127.0.0.1:0"


def test_listing_is_a_map_of_name_to_proxy(api: Api, dead_port: int) -> None:
    one, two = api.create("one", dead_port), api.create("two", dead_port)
    listed = api.call("GET", "/proxies")
    assert listed.status == 200
    assert listed.json[one["name"]] == one
    assert listed.json[two["name"]] == two


def test_unknown_proxy_is_404_everywhere(api: Api) -> None:
    missing = api.name("missing")
    for method, path in [
        ("GET", f"/proxies/{missing}"),
        ("POST", f"/proxies/{missing}"),
        ("PATCH", f"/proxies/{missing}"),
        ("DELETE", f"/proxies/{missing}"),
        ("GET", f"/proxies/{missing}/toxics"),
        ("POST", f"/proxies/{missing}/toxics"),
        ("GET", f"/proxies/{missing}/toxics/latency_downstream"),
        ("PATCH", f"/proxies/{missing}/toxics/latency_downstream"),
        ("DELETE", f"/proxies/{missing}/toxics/latency_downstream"),
    ]:
        reply = api.call(method, path, {"enabled": True} if method != "GET" else None)
        assert error(reply) == {"error": "proxy not found", "status": 404}, (method, path)


def test_update_with_post_and_patch_keeps_the_address(
    api: Api, dead_port: int, redis_port: int
) -> None:
    created = api.create("u", dead_port)
    down = api.call("PATCH", f"/proxies/{created['name']}", {"enabled": False})
    assert down.status == 200 and down.json == {**created, "enabled": False}
    up = api.call("POST", f"/proxies/{created['name']}", {"enabled": True})
    assert up.status == 200 and up.json == created  # listening again on the same port
    moved = api.patch(created, upstream=f"127.0.0.1:{redis_port}")
    assert moved["upstream"] == f"127.0.0.1:{redis_port}" and moved["listen"] == created["listen"]
    wait_for(lambda: pong(port_of(moved)), 5, "PING through the re-pointed proxy")
    bad = api.call("PATCH", f"/proxies/{created['name']}", raw=b"[")
    assert bad.status == 400


def test_delete_answers_204(api: Api, dead_port: int) -> None:
    created = api.create("d", dead_port)
    reply = api.call("DELETE", f"/proxies/{created['name']}")
    assert (reply.status, reply.body) == (204, b"")
    assert api.call("GET", f"/proxies/{created['name']}").status == 404
    assert refused(port_of(created))


def test_toxic_lifecycle(api: Api, dead_port: int) -> None:
    p = api.create("tox", dead_port)
    base = f"/proxies/{p['name']}/toxics"
    created = api.call("POST", base, {"type": "latency", "attributes": {"latency": 100}})
    assert created.status == 200
    toxic = created.json
    assert toxic == {
        "attributes": {"latency": 100, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    assert api.call("GET", base).json == [toxic]
    assert api.call("GET", f"/proxies/{p['name']}").json["toxics"] == [toxic]
    assert api.call("GET", f"{base}/latency_downstream").json == toxic
    patched = api.call("PATCH", f"{base}/latency_downstream", {"attributes": {"jitter": 10}})
    assert patched.status == 200
    assert patched.json["attributes"] == {"latency": 100, "jitter": 10}
    posted = api.call("POST", f"{base}/latency_downstream", {"toxicity": 0.5})
    assert posted.status == 200 and posted.json["toxicity"] == 0.5
    assert posted.json["attributes"] == {"latency": 100, "jitter": 10}
    deleted = api.call("DELETE", f"{base}/latency_downstream")
    assert (deleted.status, deleted.body) == (204, b"")
    assert api.call("GET", base).json == []


def test_toxic_errors(api: Api, dead_port: int) -> None:
    p = api.create("tox", dead_port)
    base = f"/proxies/{p['name']}/toxics"
    api.toxic(p, type="timeout", name="t1", attributes={"timeout": 0})
    assert error(api.call("POST", base, {"type": "timeout", "name": "t1"})) == {
        "error": "toxic already exists",
        "status": 409,
    }
    assert error(api.call("POST", base, {"type": "lag"})) == {
        "error": "invalid toxic type",
        "status": 400,
    }
    assert error(api.call("POST", base, {"type": "latency", "stream": "both"})) == {
        "error": "stream was invalid, can be either upstream or downstream",
        "status": 400,
    }
    bad_attr = api.call("POST", base, {"type": "latency", "attributes": {"latency": "slow"}})
    assert bad_attr.status == 400 and error(bad_attr)["error"].startswith("bad request body")
    assert api.call("POST", base, raw=b"{").status == 400
    for method in ("GET", "PATCH", "POST", "DELETE"):
        reply = api.call(method, f"{base}/nope", {} if method in ("PATCH", "POST") else None)
        assert error(reply) == {"error": "toxic not found", "status": 404}, method
    assert api.call("PATCH", f"{base}/t1", {"toxicity": "x"}).status == 400


def test_toxics_list_upstream_first_and_default_names(api: Api, dead_port: int) -> None:
    p = api.create("order", dead_port)
    down = api.toxic(p, type="bandwidth", attributes={"rate": 100})
    up = api.toxic(p, type="slow_close", stream="upstream", toxicity=0.25)
    assert (down["name"], up["name"]) == ("bandwidth_downstream", "slow_close_upstream")
    assert up["toxicity"] == 0.25 and up["stream"] == "upstream"
    assert [t["name"] for t in api.call("GET", f"/proxies/{p['name']}/toxics").json] == [
        "slow_close_upstream",
        "bandwidth_downstream",
    ]


def test_populate_creates_keeps_and_replaces(api: Api, dead_port: int, redis_port: int) -> None:
    specs = [
        {"name": api.name("a"), "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{dead_port}"},
        {
            "name": api.name("b"),
            "listen": "127.0.0.1:0",
            "upstream": f"127.0.0.1:{redis_port}",
            "enabled": False,
        },
    ]
    first = api.call("POST", "/populate", specs)
    assert first.status == 201
    proxies = first.json["proxies"]
    assert [p["name"] for p in proxies] == [api.name("a"), api.name("b")]
    assert [p["enabled"] for p in proxies] == [True, False]
    a = proxies[0]
    api.toxic(a, type="latency")
    same = api.call("POST", "/populate", [{**specs[0], "listen": a["listen"]}])
    assert same.status == 201 and same.json["proxies"][0]["toxics"] != []  # untouched
    changed = api.call(
        "POST",
        "/populate",
        [{**specs[0], "listen": a["listen"], "upstream": f"127.0.0.1:{redis_port}"}],
    )
    assert changed.status == 201
    assert changed.json["proxies"][0]["upstream"] == f"127.0.0.1:{redis_port}"
    assert changed.json["proxies"][0]["toxics"] == []  # replaced by a new proxy


def test_populate_errors(api: Api) -> None:
    missing = api.call("POST", "/populate", [{"name": api.name("x")}])
    assert missing.status == 400
    assert missing.json == {
        "error": "missing required field: upstream at proxy 1",
        "status": 400,
        "proxies": None,
    }
    not_a_list = api.call("POST", "/populate", {"name": api.name("x")})
    assert not_a_list.status == 400 and not_a_list.json["error"].startswith("bad request body")
    assert api.call("GET", f"/proxies/{api.name('x')}").status == 404


def test_reset_enables_proxies_and_removes_toxics(api: Api, dead_port: int) -> None:
    p = api.create("r", dead_port)
    api.toxic(p, type="latency", attributes={"latency": 1000})
    api.toxic(p, type="timeout", stream="upstream")
    api.patch(p, enabled=False)
    reply = api.call("POST", "/reset")
    assert (reply.status, reply.body) == (204, b"")
    assert api.call("GET", f"/proxies/{p['name']}").json == p


def test_routing_errors(api: Api) -> None:
    assert api.call("GET", "/nothing").status == 404
    assert api.call("GET", "/proxies/").status == 404
    assert api.call("PUT", "/proxies").status == 405
    assert api.call("DELETE", "/reset").status == 405


def test_browsers_are_refused(api: Api) -> None:
    reply = api.call("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert reply.status == 403


def test_keep_alive_and_chunked_bodies(api: Api, dead_port: int) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        conn.request("GET", "/version")
        assert conn.getresponse().read()
        spec = {
            "name": api.name("c"),
            "listen": "127.0.0.1:0",
            "upstream": f"127.0.0.1:{dead_port}",
        }
        conn.request(
            "POST", "/proxies", body=iter([json.dumps(spec).encode()]), encode_chunked=True
        )
        response = conn.getresponse()
        assert response.status == 201 and json.loads(response.read())["name"] == spec["name"]
    finally:
        conn.close()


# -- (b) toxiproxy-python as the client -----------------------------------------------------


@pytest.fixture
def client(toxiproxy_url: str, api: Api) -> Iterator[Any]:
    toxiproxy = pytest.importorskip("toxiproxy")
    from toxiproxy.api import APIConsumer  # server address lives in class attributes

    saved = APIConsumer.host, APIConsumer.port
    APIConsumer.host, APIConsumer.port = api.host, api.port
    try:
        yield toxiproxy.Toxiproxy()
    finally:
        APIConsumer.host, APIConsumer.port = saved


def test_toxiproxy_python_lifecycle(client: Any, api: Api, redis_port: int) -> None:
    name = api.name("py")
    proxy = client.create(upstream=f"127.0.0.1:{redis_port}", name=name)
    assert proxy.enabled is True and proxy.listen.startswith("127.0.0.1:")
    assert name in client.proxies()
    assert client.get_proxy(name).upstream == f"127.0.0.1:{redis_port}"
    assert client.running() and client.version()
    wait_for(lambda: pong(int(proxy.listen.rsplit(":", 1)[1])), 5, "PING through the proxy")

    proxy.add_toxic(type="latency", attributes={"latency": 100})
    proxy.add_toxic(type="timeout", stream="upstream", name="cut", toxicity=0.5)
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "cut"}
    assert toxics["latency_downstream"].attributes == {"latency": 100, "jitter": 0}
    assert toxics["cut"].stream == "upstream" and toxics["cut"].toxicity == 0.5
    assert proxy.destroy_toxic("cut") is True
    assert set(proxy.toxics()) == {"latency_downstream"}

    with proxy.down():
        assert client.get_proxy(name).enabled is False
    assert client.get_proxy(name).enabled is True
    assert client.reset() is True
    assert proxy.toxics() == {}
    assert proxy.destroy() is True
    assert client.get_proxy(name) is None


def test_toxiproxy_python_errors(client: Any, api: Api, dead_port: int) -> None:
    from toxiproxy.api import APIConsumer
    from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

    proxy = client.create(upstream=f"127.0.0.1:{dead_port}", name=api.name("e"))
    with pytest.raises(ProxyExists):
        client.create(upstream=f"127.0.0.1:{dead_port}", name=api.name("e"))
    with pytest.raises(ProxyExists):  # the server's 409, not the client's own check
        APIConsumer.post("/proxies", json={"name": proxy.name, "upstream": "127.0.0.1:1"})
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="nonsense")
    with pytest.raises(NotFound):
        APIConsumer.get(f"/proxies/{api.name('absent')}")


def test_toxiproxy_python_populate(client: Any, api: Api, dead_port: int) -> None:
    wanted = [
        {"name": api.name(n), "upstream": f"127.0.0.1:{dead_port}", "listen": "127.0.0.1:0"}
        for n in "xy"
    ]
    created = client.populate(wanted)
    assert sorted(p.name for p in created) == sorted(w["name"] for w in wanted)
    assert all(client.get_proxy(w["name"]) is not None for w in wanted)


# -- (c) real TCP through the proxy to redis-server -----------------------------------------


def test_ping_through_the_proxy(proxy: dict[str, Any]) -> None:
    with resp(port_of(proxy)) as conn:
        assert conn.cmd("PING") == b"+PONG"
        assert conn.cmd("SET", "k", "v" * 100_000) == b"+OK"
        assert conn.cmd("GET", "k") == b"v" * 100_000
    client = redis.Redis(port=port_of(proxy), socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()


def rtt(conn: Resp) -> float:
    start = time.monotonic()
    assert conn.cmd("PING") == b"+PONG"
    return time.monotonic() - start


def test_latency_applies_to_live_connections_both_ways(api: Api, proxy: dict[str, Any]) -> None:
    with resp(port_of(proxy)) as conn:
        rtt(conn)
        api.toxic(proxy, type="latency", attributes={"latency": 150})
        assert rtt(conn) >= 0.15
        api.toxic(
            proxy, type="latency", stream="upstream", attributes={"latency": 100, "jitter": 20}
        )
        assert rtt(conn) >= 0.15 + 0.08
        api.call("DELETE", f"/proxies/{proxy['name']}/toxics/latency_downstream")
        api.call("DELETE", f"/proxies/{proxy['name']}/toxics/latency_upstream")
        assert conn.cmd("PING") == b"+PONG"  # still the same, healthy connection


def test_timeout_zero_holds_data_and_its_removal_closes(api: Api, proxy: dict[str, Any]) -> None:
    with resp(port_of(proxy), timeout=0.5) as conn:
        assert conn.cmd("PING") == b"+PONG"
        api.toxic(proxy, type="timeout", attributes={"timeout": 0})
        with pytest.raises(TimeoutError):
            conn.cmd("PING")
        api.call("DELETE", f"/proxies/{proxy['name']}/toxics/timeout_downstream")
        # as in Toxiproxy, removing a timeout toxic closes the connections it held
        assert conn.read_until_closed()[1] in ("eof", "reset")
    wait_for(lambda: pong(port_of(proxy)), 5, "new connections work again")


def test_timeout_closes_after_its_duration(api: Api, proxy: dict[str, Any]) -> None:
    api.toxic(proxy, type="timeout", stream="upstream", attributes={"timeout": 300})
    with resp(port_of(proxy)) as conn:
        start = time.monotonic()
        conn.send("PING")
        data, how = conn.read_until_closed()
        assert data == b"" and how in ("eof", "reset")
        assert time.monotonic() - start >= 0.3


def test_reset_peer_resets_the_connection(api: Api, proxy: dict[str, Any]) -> None:
    api.toxic(proxy, type="reset_peer", attributes={"timeout": 200})
    with resp(port_of(proxy)) as conn:
        start = time.monotonic()
        conn.send("PING")
        with pytest.raises(ConnectionResetError):
            conn.sock.recv(100)
        assert time.monotonic() - start >= 0.2
    client = redis.Redis(port=port_of(proxy), socket_timeout=5, retry=None)
    try:
        with pytest.raises(redis.ConnectionError, match="reset"):
            client.ping()
    finally:
        client.close()


def test_limit_data_closes_after_that_many_bytes(
    api: Api, proxy: dict[str, Any], redis_port: int
) -> None:
    with resp(redis_port) as direct:
        assert direct.cmd("SET", "big", "x" * 10_000) == b"+OK"
    api.toxic(proxy, type="limit_data", attributes={"bytes": 1234})
    with resp(port_of(proxy)) as conn:
        conn.send("GET", "big")
        data, how = conn.read_until_closed()
    assert len(data) == 1234 and data.startswith(b"$10000\r\nxxx") and how == "eof"


def test_toxicity_zero_never_applies(api: Api, proxy: dict[str, Any]) -> None:
    api.toxic(proxy, type="limit_data", toxicity=0.0, attributes={"bytes": 1})
    for _ in range(5):
        with resp(port_of(proxy)) as conn:
            assert conn.cmd("PING") == b"+PONG"


def test_bandwidth_slows_a_large_get(api: Api, proxy: dict[str, Any], redis_port: int) -> None:
    value = b"v" * 100_000
    with resp(redis_port) as direct:
        assert direct.cmd("SET", "wide", value) == b"+OK"
    api.toxic(proxy, type="bandwidth", attributes={"rate": 200})  # 200 KB/s: 0.5 s for 100 kB
    with resp(port_of(proxy), timeout=10) as conn:
        start = time.monotonic()
        assert conn.cmd("GET", "wide") == value
        assert time.monotonic() - start >= 0.4


def test_slicer_keeps_replies_intact(api: Api, proxy: dict[str, Any]) -> None:
    api.toxic(
        proxy, type="slicer", attributes={"average_size": 7, "size_variation": 3, "delay": 50}
    )
    api.toxic(proxy, type="slicer", stream="upstream", attributes={"average_size": 3, "delay": 10})
    with resp(port_of(proxy)) as conn:
        assert conn.cmd("SET", "sliced", "0123456789" * 300) == b"+OK"
        assert conn.cmd("GET", "sliced") == b"0123456789" * 300


def test_slow_close_delays_the_close(api: Api, proxy: dict[str, Any]) -> None:
    api.toxic(proxy, type="slow_close", attributes={"delay": 300})
    with resp(port_of(proxy)) as conn:
        start = time.monotonic()
        conn.send("QUIT")  # redis answers +OK and closes its side
        data, how = conn.read_until_closed()
        assert data == b"+OK\r\n" and how == "eof"
        assert time.monotonic() - start >= 0.3


def test_disable_closes_connections_and_refuses_then_enable_restores(
    api: Api, proxy: dict[str, Any]
) -> None:
    port = port_of(proxy)
    with resp(port) as conn:
        assert conn.cmd("PING") == b"+PONG"
        api.patch(proxy, enabled=False)
        assert conn.read_until_closed()[1] in ("eof", "reset")
    assert refused(port)
    assert api.patch(proxy, enabled=True)["listen"] == proxy["listen"]
    wait_for(lambda: pong(port), 5, "PING after re-enabling")


def test_delete_closes_connections(api: Api, proxy: dict[str, Any]) -> None:
    with resp(port_of(proxy)) as conn:
        assert conn.cmd("PING") == b"+PONG"
        assert api.call("DELETE", f"/proxies/{proxy['name']}").status == 204
        assert conn.read_until_closed()[1] in ("eof", "reset")
    assert refused(port_of(proxy))


def test_reset_restores_traffic(api: Api, proxy: dict[str, Any]) -> None:
    api.toxic(proxy, type="timeout", attributes={"timeout": 0})
    api.toxic(proxy, type="latency", stream="upstream", attributes={"latency": 10_000})
    api.patch(proxy, enabled=False)
    assert refused(port_of(proxy))
    assert api.call("POST", "/reset").status == 204
    wait_for(lambda: pong(port_of(proxy)), 5, "PING after reset")


def test_unreachable_upstream_closes_the_client(api: Api, dead_port: int) -> None:
    p = api.create("dead", dead_port)
    with resp(port_of(p)) as conn:
        conn.send("PING")
        data, how = conn.read_until_closed()
        assert data == b"" and how in ("eof", "reset")


def test_toxics_change_under_live_traffic_without_losing_bytes(
    api: Api, proxy: dict[str, Any]
) -> None:
    value = bytes(range(256)) * 256  # 64 KiB: several reads per reply
    failures: list[BaseException] = []
    done = threading.Event()
    replies = 0

    def traffic() -> None:
        nonlocal replies
        try:
            with resp(port_of(proxy), timeout=20) as conn:
                assert conn.cmd("SET", "live", value) == b"+OK"
                while not done.is_set():
                    conn.send("GET", "live")
                    conn.send("PING")
                    assert conn.reply() == value
                    assert conn.reply() == b"+PONG"
                    replies += 1
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_for(lambda: (replies > 0 or bool(failures), replies), 10, "traffic flowing")
        base = f"/proxies/{proxy['name']}/toxics"
        for round_ in range(15):
            for stream in ("downstream", "upstream"):
                api.toxic(
                    proxy, type="latency", stream=stream, attributes={"latency": 5, "jitter": 3}
                )
                api.toxic(
                    proxy,
                    type="slicer",
                    stream=stream,
                    attributes={"average_size": 500, "size_variation": 100},
                )
                api.toxic(proxy, type="bandwidth", stream=stream, attributes={"rate": 50_000})
            api.call("PATCH", f"{base}/latency_downstream", {"attributes": {"latency": round_ % 4}})
            for stream in ("upstream", "downstream"):
                for kind in ("slicer", "latency", "bandwidth"):
                    assert api.call("DELETE", f"{base}/{kind}_{stream}").status == 204
        before = replies
        wait_for(
            lambda: (replies > before + 2 or bool(failures), replies), 10, "traffic still flowing"
        )
    finally:
        done.set()
        worker.join(30)
    assert not failures, failures
    assert not worker.is_alive()


def test_many_clients_at_once(proxy: dict[str, Any]) -> None:
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with resp(port_of(proxy)) as conn:
                for j in range(50):
                    assert conn.cmd("SET", f"c{i}", str(j)) == b"+OK"
                    assert conn.cmd("GET", f"c{i}") == str(j).encode()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]


# -- (d) the embedded server itself ---------------------------------------------------------


@embedded_only
def test_stop_closes_listeners_connections_and_thread(redis_port: int) -> None:
    threads_before = set(threading.enumerate())
    server = ToxiproxyServer().start()
    api = Api(server.url)
    p = api.create("s", redis_port)
    wait_for(lambda: pong(port_of(p)), 5, "PING through the proxy")
    conn = Resp(port_of(p))
    try:
        assert conn.cmd("PING") == b"+PONG"
        api.toxic(p, type="latency", attributes={"latency": 60_000})
        conn.send("PING")  # held in the toxic when the server stops
        server.stop()
        assert not server.running
        assert set(threading.enumerate()) <= threads_before  # its thread and executor are gone
        assert conn.read_until_closed()[1] in ("eof", "reset")
    finally:
        conn.close()
    assert refused(port_of(p))
    assert refused(server.port)
    server.stop()  # idempotent


@embedded_only
def test_start_errors(ports: PortLease) -> None:
    (port,) = ports.claim(1)
    with ToxiproxyServer(port=port) as first:
        assert first.port == port
        with pytest.raises(RuntimeError, match="already started"):
            first.start()
        with pytest.raises(OSError):
            ToxiproxyServer(port=port).start()
    assert not first.running


@embedded_only
def test_bind_errors_are_500_like_go(api: Api, dead_port: int) -> None:
    taken = api.create("first", dead_port)
    reply = api.call(
        "POST",
        "/proxies",
        {"name": api.name("second"), "listen": taken["listen"], "upstream": "127.0.0.1:1"},
    )
    assert reply.status == 500
    assert error(reply)["error"] == f"listen tcp {taken['listen']}: bind: address already in use"
    assert api.call("GET", f"/proxies/{api.name('second')}").status == 404
    no_port = api.call(
        "POST", "/proxies", {"name": api.name("third"), "listen": "localhost", "upstream": "x:1"}
    )
    assert error(no_port)["error"] == "listen tcp: address localhost: missing port in address"


@embedded_only
def test_main_serves_until_sigterm(ports: PortLease, tmp_path: Any, dead_port: int) -> None:
    (port,) = ports.claim(1)
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps([{"name": "cfg", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{dead_port}"}])
    )
    code = f"import sys; from harness.toxiproxy import main; sys.exit(main('127.0.0.1', {port}, config={str(config)!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"toxiproxy API listening on http://127.0.0.1:{port}"
        listed = Api(f"http://127.0.0.1:{port}").call("GET", "/proxies").json
        assert list(listed) == ["cfg"] and listed["cfg"]["enabled"] is True
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert refused(port)


@embedded_only
def test_closed_connections_leave_no_sockets_behind(api: Api, proxy: dict[str, Any]) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    baseline = open_fds()
    for toxic in (None, "latency", "slicer"):
        if toxic == "latency":
            api.toxic(proxy, type="latency", attributes={"latency": 1})
        elif toxic == "slicer":
            api.toxic(proxy, type="slicer", stream="upstream", attributes={"average_size": 2})
        conns = [Resp(port_of(proxy)) for _ in range(20)]
        for conn in conns:
            assert conn.cmd("PING") == b"+PONG"
            conn.close()
    wait_for(lambda: (open_fds() <= baseline, open_fds()), 5, f"back to {baseline} open files")
