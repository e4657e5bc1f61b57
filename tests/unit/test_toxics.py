"""Pure parts of the embedded Toxiproxy: request decoding the way Go decodes it, toxic
attribute validation, JSON shapes, slicer chunking, addresses, and each toxic's behaviour
on an in-memory pipeline (no sockets; timing asserts lower bounds only)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from harness.toxiproxy import jsonio
from harness.toxiproxy.addr import parse_port, split_host_port
from harness.toxiproxy.api import Api
from harness.toxiproxy.jsonio import ApiError
from harness.toxiproxy.stream import Chan, Chunk, Item, Stage, now
from harness.toxiproxy.toxics import TYPES, Toxic, new_toxic, slice_offsets, updated_toxic


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def make(value: object, existing: tuple[str, ...] = ()) -> Toxic:
    return new_toxic(body(value), lambda name: name in existing)


def error_of(value: object | bytes, existing: tuple[str, ...] = ()) -> ApiError:
    raw = value if isinstance(value, bytes) else body(value)
    with pytest.raises(ApiError) as info:
        new_toxic(raw, lambda name: name in existing)
    return info.value


# -- creating toxics ----------------------------------------------------------------------


def test_defaults_follow_toxiproxy() -> None:
    toxic = make({"type": "latency"})
    assert toxic.to_json() == {
        "attributes": {"latency": 0, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    assert list(toxic.to_json()) == ["attributes", "name", "type", "stream", "toxicity"]


@pytest.mark.parametrize(
    ("type_name", "attributes"),
    [
        ("noop", []),
        ("latency", ["latency", "jitter"]),
        ("bandwidth", ["rate"]),
        ("slow_close", ["delay"]),
        ("timeout", ["timeout"]),
        ("reset_peer", ["timeout"]),
        ("slicer", ["average_size", "size_variation", "delay"]),
        ("limit_data", ["bytes"]),
    ],
)
def test_every_type_shows_all_its_attributes(type_name: str, attributes: list[str]) -> None:
    attrs = {"average_size": 10} if type_name == "slicer" else {}
    toxic = make({"type": type_name, "attributes": attrs})
    assert list(toxic.to_json()["attributes"]) == attributes  # type: ignore[call-overload]


def test_stream_is_case_insensitive_and_echoed_as_given() -> None:
    toxic = make({"type": "timeout", "stream": "UpStream", "attributes": {"timeout": 5}})
    assert toxic.direction == "upstream"
    assert toxic.stream == "UpStream"
    assert toxic.name == "timeout_UpStream"


def test_keys_match_case_insensitively_and_null_means_unset() -> None:
    toxic = make({"Type": "latency", "NAME": None, "Attributes": {"LATENCY": 7}, "toxicity": None})
    assert (toxic.name, toxic.attributes["latency"], toxic.toxicity) == (
        "latency_downstream",
        7,
        1.0,
    )


def test_unknown_attributes_are_ignored() -> None:
    assert make({"type": "bandwidth", "attributes": {"rate": 5, "burst": 9}}).attributes == {
        "rate": 5
    }


def test_trailing_data_after_the_json_value_is_ignored() -> None:
    assert new_toxic(b'{"type": "noop"} garbage', lambda n: False).type.name == "noop"


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        (
            {"type": "latency", "stream": "sideways"},
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        ({"type": "lag"}, 400, "invalid toxic type"),
        ({}, 400, "invalid toxic type"),
        ({"type": "latency", "name": "taken"}, 409, "toxic already exists"),
        ({"type": "latency"}, 409, "toxic already exists"),  # default name taken
    ],
)
def test_toxiproxy_errors(value: object, status: int, message: str) -> None:
    error = error_of(value, existing=("taken", "latency_downstream") if status == 409 else ())
    assert (error.status, error.message) == (status, message)
    assert error.to_json() == {"error": message, "status": status}


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b'{"type": ', "not JSON (it ends early)"),
        (b"nope", "not JSON (Expecting value"),
        (b'{"type": NaN}', "not JSON (NaN is not JSON)"),
        (b"[1]", "expected a JSON object (a toxic), not [1]"),
        (b'{"type": 3}', "expected a string for type, not 3"),
        (b'{"type": "latency", "toxicity": "high"}', 'expected a number for toxicity, not "high"'),
        (b'{"type": "latency", "toxicity": true}', "expected a number for toxicity, not true"),
        (b'{"type": "latency", "attributes": [1]}', "expected an object for attributes, not [1]"),
        (b'{"type": "latency", "attributes": {"latency": "100"}}', 'attributes.latency, not "100"'),
        (b'{"type": "latency", "attributes": {"latency": 1.5}}', "attributes.latency, not 1.5"),
        (b'{"type": "latency", "attributes": {"latency": 1e3}}', "attributes.latency, not 1000.0"),
        (b'{"type": "latency", "attributes": {"latency": true}}', "attributes.latency, not true"),
        (
            b'{"type": "latency", "attributes": {"latency": 9223372036854775808}}',
            "expected a 64-bit integer for attributes.latency",
        ),
        (
            b'{"type": "slicer", "attributes": {"average_size": 0}}',
            "average_size must be at least 1",
        ),
        (
            b'{"type": "slicer", "attributes": {"average_size": 4, "size_variation": 4}}',
            "size_variation",
        ),
        (b'{"type": "bandwidth", "attributes": {"rate": -1}}', "must not be negative"),
    ],
)
def test_bad_bodies_are_400_bad_request_body(raw: bytes, detail: str) -> None:
    error = error_of(raw)
    assert error.status == 400
    assert error.message.startswith("bad request body: ")
    assert detail in error.message


def test_negative_values_toxiproxy_accepts_are_accepted() -> None:
    # Go treats them as "no delay" / "close at once"; only those that crash it are refused
    assert (
        make({"type": "latency", "attributes": {"latency": -5, "jitter": -1}}).attributes["latency"]
        == -5
    )
    assert make({"type": "limit_data", "attributes": {"bytes": -1}}).attributes["bytes"] == -1


def test_toxicity_is_a_float32_written_as_go_writes_it() -> None:
    assert make({"type": "noop", "toxicity": 0.1}).to_json()["toxicity"] == 0.1
    assert make({"type": "noop", "toxicity": 0.123456789}).to_json()["toxicity"] == 0.12345679
    assert make({"type": "noop", "toxicity": 0}).to_json()["toxicity"] == 0
    assert make({"type": "noop", "toxicity": 1}).to_json()["toxicity"] == 1


def test_update_merges_attributes_and_keeps_identity() -> None:
    toxic = make({"type": "latency", "toxicity": 0.5, "attributes": {"latency": 100, "jitter": 3}})
    new = updated_toxic(
        toxic,
        body({"name": "x", "type": "timeout", "stream": "upstream", "attributes": {"jitter": 9}}),
    )
    assert (new.name, new.type.name, new.direction) == (
        "latency_downstream",
        "latency",
        "downstream",
    )
    assert dict(new.attributes) == {"latency": 100, "jitter": 9}
    assert new.toxicity == 0.5
    assert updated_toxic(new, body({"toxicity": 0.25})).toxicity == 0.25


def test_update_is_all_or_nothing() -> None:
    toxic = make({"type": "slicer", "attributes": {"average_size": 10}})
    with pytest.raises(ApiError):
        updated_toxic(toxic, body({"attributes": {"average_size": 0}}))
    assert toxic.attributes["average_size"] == 10


# -- JSON helpers ---------------------------------------------------------------------------


def test_field_lookup_last_match_wins() -> None:
    assert jsonio.field({"name": "a", "Name": "b"}, "name") == "b"
    assert jsonio.field({"name": "a", "Name": None}, "name") == "a"
    assert jsonio.field({}, "name") is None


def test_dumps_is_compact() -> None:
    assert jsonio.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


# -- slicer chunking ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "average", "variation"),
    [(1, 1, 0), (100, 10, 0), (1000, 10, 5), (4096, 7, 6), (65536, 1, 0)],
)
def test_slices_cover_the_data_in_order(size: int, average: int, variation: int) -> None:
    pieces = slice_offsets(size, average, variation, random.Random(1))
    assert pieces[0][0] == 0 and pieces[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(0 < end - start <= average + variation for start, end in pieces)


def test_small_data_is_not_sliced() -> None:
    assert slice_offsets(15, 10, 5, random.Random(0)) == [(0, 15)]


def test_no_variation_halves_evenly() -> None:
    sizes = [end - start for start, end in slice_offsets(100, 10, 0, random.Random(0))]
    assert set(sizes) <= {6, 7} and sum(sizes) == 100


def test_slicing_is_reproducible_with_a_seed() -> None:
    assert slice_offsets(5000, 20, 10, random.Random(7)) == slice_offsets(
        5000, 20, 10, random.Random(7)
    )


# -- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", "80")),
        (":0", ("", "0")),
        ("[::1]:6379", ("::1", "6379")),
        ("localhost:", ("localhost", "")),
    ],
)
def test_split_host_port(addr: str, expected: tuple[str, str]) -> None:
    assert split_host_port(addr) == expected


@pytest.mark.parametrize(
    ("addr", "problem"),
    [
        ("localhost", "missing port in address"),
        ("1:2:3", "too many colons"),
        ("[::1", "missing ']'"),
        ("[::1]x", "unexpected ']'"),
    ],
)
def test_split_host_port_errors_read_like_go(addr: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        split_host_port(addr)


def test_ports() -> None:
    assert parse_port("6379") == 6379
    assert parse_port("") == 0
    with pytest.raises(ValueError, match="unknown port"):
        parse_port("99999")


# -- API routes (the aiohttp app in-process; its proxies do not listen) ---------------


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def call(api: Api, requests: list[tuple[str, str, bytes, dict[str, str]]]) -> list[Any]:
    """(status, body) of each request, served by ``api``'s aiohttp application."""
    out = []
    async with TestClient(TestServer(api.app())) as client:
        for method, path, data, headers in requests:
            response = await client.request(method, path, data=data, headers=headers)
            out.append((response.status, await response.read()))
    await api.close()
    return out


def test_api_routes_and_errors_without_listening() -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        api = Api(random.Random(0))
        requests = []
        for method, path, data in [
            ("GET", "/proxies", b""),
            ("POST", "/proxies", body({"name": "p", "upstream": "127.0.0.1:1", "enabled": False})),
            ("GET", "/proxies/p", b""),
            ("GET", "/proxies/none", b""),
            ("PUT", "/proxies", b""),
            ("GET", "/nothing", b""),
            ("GET", "/proxies/", b""),
            ("POST", "/populate", b"[]"),
            ("POST", "/populate", body([{"name": "q"}])),
        ]:
            requests.append((method, path, data, {}))
        return await call(api, requests)

    results = run(scenario())
    assert results[0] == (200, b"{}")
    assert results[1][0] == 201
    assert json.loads(results[1][1]) == {
        "name": "p",
        "listen": "",
        "upstream": "127.0.0.1:1",
        "enabled": False,
        "toxics": [],
    }
    assert results[2][0] == 200
    assert results[3][0] == 404
    assert json.loads(results[3][1]) == {"error": "proxy not found", "status": 404}
    assert results[4][0] == 405
    assert results[5][0] == 404
    assert results[6][0] == 404
    assert results[7] == (201, b'{"proxies":null}')  # Go's empty slice is null
    assert json.loads(results[8][1]) == {
        "error": "missing required field: upstream at proxy 1",
        "status": 400,
        "proxies": None,
    }


def test_browsers_are_refused() -> None:
    (response,) = run(call(Api(), [("GET", "/proxies", b"", {"User-Agent": "Mozilla/5.0"})]))
    assert response == (403, b"User agent not allowed")


# -- toxic behaviour on an in-memory pipeline ----------------------------------------------


class Collector:
    """A stage output that records what arrives and when."""

    def __init__(self) -> None:
        self.items: list[tuple[float, bytes | None]] = []
        self.changed = asyncio.Event()

    def put(self, item: Item) -> None:
        self.items.append((now(), None if item is None else bytes(item.data)))
        self.changed.set()

    def writable(self) -> bool:
        return True

    async def wait_writable(self) -> None:
        return

    @property
    def data(self) -> bytes:
        return b"".join(d for _, d in self.items if d is not None)

    @property
    def ended(self) -> bool:
        return any(d is None for _, d in self.items)

    async def until(self, done: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


def stage(
    type_name: str,
    attributes: Mapping[str, int],
    toxicity: float = 1.0,
    on_reset: Callable[[], None] | None = None,
) -> tuple[Stage, Collector]:
    toxic = make({"type": type_name, "attributes": dict(attributes), "toxicity": toxicity})
    out = Collector()
    return Stage(toxic, out, random.Random(0), on_reset=on_reset), out


def test_latency_delays_every_chunk_from_its_read_time() -> None:
    async def scenario() -> None:
        st, out = stage("latency", {"latency": 50})
        st.start()
        sent = now()
        for part in (b"a", b"b", b"c"):
            st.inbox.put(Chunk(part, now()))
        st.inbox.put(None)
        await out.until(lambda: out.ended)
        assert out.data == b"abc"
        assert all(t - sent >= 0.05 for t, _ in out.items)

    run(scenario())


def test_interrupting_a_toxic_passes_on_what_it_held() -> None:
    async def scenario() -> None:
        st, out = stage("latency", {"latency": 60_000})
        st.start()
        st.inbox.put(Chunk(b"held", now()))
        while not st.held:
            await asyncio.sleep(0)
        await st.interrupt()
        st.flush_held()
        assert out.data == b"held"

    run(scenario())


def test_limit_data_truncates_closes_and_counts_across_restarts() -> None:
    async def scenario() -> None:
        st, out = stage("limit_data", {"bytes": 5})
        st.start()
        st.inbox.put(Chunk(b"abc", now()))
        await out.until(lambda: out.data == b"abc")
        await st.interrupt()
        st.start()  # an update restarts the toxic; the count survives
        st.inbox.put(Chunk(b"defgh", now()))
        await out.until(lambda: out.ended)
        assert out.data == b"abcde"

    run(scenario())


def test_slicer_keeps_the_bytes_and_slices_them() -> None:
    async def scenario() -> None:
        st, out = stage("slicer", {"average_size": 4, "size_variation": 2, "delay": 10})
        st.start()
        payload = bytes(range(256)) * 4
        st.inbox.put(Chunk(payload, now()))
        st.inbox.put(None)
        await out.until(lambda: out.ended)
        assert out.data == payload
        assert all(d is None or len(d) <= 6 for _, d in out.items)
        assert len(out.items) > len(payload) // 6

    run(scenario())


def test_timeout_drops_data_then_closes() -> None:
    async def scenario() -> None:
        st, out = stage("timeout", {"timeout": 50})
        start = now()
        st.start()
        st.inbox.put(Chunk(b"lost", now()))
        await out.until(lambda: out.ended)
        assert out.data == b""
        assert out.items[-1][0] - start >= 0.05

    run(scenario())


def test_timeout_zero_holds_the_link_open() -> None:
    async def scenario() -> None:
        st, out = stage("timeout", {"timeout": 0})
        st.start()
        st.inbox.put(Chunk(b"lost", now()))
        while st.inbox.items:
            await asyncio.sleep(0)
        await st.interrupt()
        assert out.items == []

    run(scenario())


def test_bandwidth_paces_data() -> None:
    async def scenario() -> None:
        st, out = stage("bandwidth", {"rate": 100})  # 100 KB/s: 20 000 bytes take 0.2 s
        start = now()
        st.start()
        st.inbox.put(Chunk(b"x" * 20_000, now()))
        st.inbox.put(None)
        await out.until(lambda: out.ended)
        assert len(out.data) == 20_000
        assert out.items[-1][0] - start >= 0.19

    run(scenario())


def test_bandwidth_zero_lets_nothing_through_until_changed() -> None:
    async def scenario() -> None:
        st, out = stage("bandwidth", {"rate": 0})
        st.start()
        st.inbox.put(Chunk(b"stuck", now()))
        while not st.held:
            await asyncio.sleep(0)
        assert out.items == []
        await st.interrupt()
        st.flush_held()
        assert out.data == b"stuck"

    run(scenario())


def test_slow_close_delays_only_the_end() -> None:
    async def scenario() -> None:
        st, out = stage("slow_close", {"delay": 50})
        st.start()
        st.inbox.put(Chunk(b"data", now()))
        ended = now()
        st.inbox.put(None)
        await out.until(lambda: out.ended)
        assert out.data == b"data"
        assert out.items[-1][0] - ended >= 0.05

    run(scenario())


def test_reset_peer_resets_after_data_and_timeout() -> None:
    async def scenario() -> None:
        resets: list[float] = []
        st, out = stage("reset_peer", {"timeout": 30}, on_reset=lambda: resets.append(now()))
        st.start()
        sent = now()
        st.inbox.put(Chunk(b"PING", now()))
        await out.until(lambda: out.ended)
        assert out.data == b""
        assert len(resets) == 1 and resets[0] - sent >= 0.03

    run(scenario())


def test_toxicity_zero_passes_everything() -> None:
    async def scenario() -> None:
        st, out = stage("timeout", {"timeout": 1}, toxicity=0.0)
        st.start()
        st.inbox.put(Chunk(b"kept", now()))
        st.inbox.put(None)
        await out.until(lambda: out.ended)
        assert out.data == b"kept" and not st.active

    run(scenario())


def test_channel_is_bounded_by_bytes_and_wakes_writers() -> None:
    async def scenario() -> None:
        woken: list[bool] = []
        chan = Chan(limit=10, on_space=lambda: woken.append(True))
        chan.put(Chunk(b"x" * 10, now()))
        assert not chan.writable()
        waiter = asyncio.ensure_future(chan.wait_writable())
        await asyncio.sleep(0)
        assert not waiter.done()
        assert (await chan.get()) is not None
        await waiter
        assert chan.writable() and woken == [True]

    run(scenario())


def test_every_registered_type_is_covered() -> None:
    assert set(TYPES) == {
        "noop",
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
    }
