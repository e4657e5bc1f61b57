"""Toxic types: their attributes, how a request body becomes a toxic, and what each does.

The behaviour follows Toxiproxy 2.x's toxics (read from its source), because tests written
against the real server must see the same effects: latency counts from when the proxy read
the data, bandwidth is in KB/s (1000 bytes) and releases data in 100 ms slices, timeout
drops data and closes after ``timeout`` ms without data (never, if 0; removing the toxic
then closes the connection), reset_peer waits for data, then ``timeout`` ms, then resets,
limit_data counts bytes across toxic updates, slicer splits chunks recursively around
``average_size``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from harness.toxiproxy import jsonio
from harness.toxiproxy.jsonio import INVALID_STREAM, INVALID_TOXIC_TYPE, TOXIC_EXISTS, ApiError
from harness.toxiproxy.stream import CHAN_LIMIT, Chunk, Pipe, Stage, now, pipe_noop

UPSTREAM = "upstream"  # client -> server
DOWNSTREAM = "downstream"  # server -> client
DIRECTIONS = (UPSTREAM, DOWNSTREAM)


@dataclass(frozen=True)
class ToxicType:
    """A kind of toxic: its integer attributes (all default to 0) and its behaviour."""

    name: str
    attributes: tuple[str, ...]
    pipe: Pipe
    buffer_bytes: int = CHAN_LIMIT
    check: Callable[[Mapping[str, int]], str | None] = lambda attrs: None
    closes_on_removal: bool = False


@dataclass(frozen=True, eq=False)
class Toxic:
    """A toxic as configured on a proxy (immutable: an update makes a new one)."""

    name: str
    type: ToxicType
    stream: str  # as the client spelled it; Toxiproxy echoes it back
    direction: str  # UPSTREAM or DOWNSTREAM
    toxicity: float  # probability that it applies to a link, decided per link
    attributes: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type.name,
            "stream": self.stream,
            "toxicity": jsonio.float32_json(self.toxicity),
        }


# -- behaviour --------------------------------------------------------------------------


async def sleep_until(due: float) -> None:
    """Sleep until ``now() >= due``. A single sleep may wake early: uvloop's timers have
    millisecond resolution on a cached clock, and a toxic must never be shorter than set."""
    while (wait := due - now()) > 0:
        await asyncio.sleep(wait)


async def sleep_for(seconds: float) -> None:
    await sleep_until(now() + seconds)


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


async def pipe_latency(stage: Stage, attrs: Mapping[str, int]) -> None:
    latency, jitter = attrs["latency"], attrs["jitter"]
    while True:
        chunk = await stage.get()
        if chunk is None:
            stage.close()
            return
        delay = latency + (stage.rng.randrange(-jitter, jitter) if jitter > 0 else 0)
        due = chunk.ts + delay / 1000
        stage.held = [chunk]
        await sleep_until(due)
        chunk.ts = due  # a later latency toxic adds its delay to this one's
        await stage.emit(chunk)
        stage.held = []


async def pipe_bandwidth(stage: Stage, attrs: Mapping[str, int]) -> None:
    rate = attrs["rate"]  # KB/s, i.e. bytes per millisecond
    debt = 0.0  # seconds owed for what was already let through
    step = rate * 100  # what may pass in 100 ms
    while True:
        chunk = await stage.get()
        if chunk is None:
            stage.close()
            return
        if rate <= 0:  # Toxiproxy lets nothing through at rate 0 until the toxic changes
            stage.held = [chunk]
            await _forever()
        debt += len(chunk.data) / (rate * 1000)
        data, ts = memoryview(chunk.data), chunk.ts
        stage.held = [Chunk(data, ts)]
        while len(data) > step:
            await sleep_for(0.1)
            await stage.emit(Chunk(data[:step], ts))
            data = data[step:]
            stage.held = [Chunk(data, ts)]
            debt -= 0.1
        start = now()
        if debt > 0:
            await sleep_for(debt)
        debt -= now() - start
        await stage.emit(Chunk(data, ts))
        stage.held = []


async def pipe_slow_close(stage: Stage, attrs: Mapping[str, int]) -> None:
    while True:
        chunk = await stage.get()
        if chunk is None:
            stage.held = [None]  # interrupted while waiting: close at once
            await sleep_for(max(attrs["delay"], 0) / 1000)
            stage.close()
            return
        stage.held = [chunk]
        await stage.emit(chunk)
        stage.held = []


async def pipe_timeout(stage: Stage, attrs: Mapping[str, int]) -> None:
    timeout = attrs["timeout"]
    while True:
        if timeout > 0:
            try:
                async with asyncio.timeout(timeout / 1000):  # restarts with each chunk
                    chunk = await stage.get()
            except TimeoutError:
                stage.close()
                return
        else:
            chunk = await stage.get()
        if chunk is None:
            stage.close()
            return
        # data is dropped


async def pipe_reset_peer(stage: Stage, attrs: Mapping[str, int]) -> None:
    await stage.get()  # the first data (or end of stream) starts the clock; it is dropped
    if attrs["timeout"] > 0:
        await sleep_for(attrs["timeout"] / 1000)
    stage.reset()


async def pipe_limit_data(stage: Stage, attrs: Mapping[str, int]) -> None:
    limit = attrs["bytes"]
    while True:
        chunk = await stage.get()
        if chunk is None:
            stage.close()
            return
        sent = stage.state.get("sent", 0)
        data = memoryview(chunk.data)[: max(limit - sent, 0)]
        if data:
            stage.state["sent"] = sent + len(data)
            out = Chunk(data, chunk.ts)
            stage.held = [out]
            await stage.emit(out)
            stage.held = []
        if limit - stage.state.get("sent", 0) <= 0:
            stage.close()
            return


def slice_offsets(
    size: int, average: int, variation: int, rng: random.Random
) -> list[tuple[int, int]]:
    """Split ``size`` bytes into ``(start, end)`` pieces around ``average`` ± ``variation``
    the way Toxiproxy's slicer does: halve (with a random shift) until a piece is at most
    ``average + variation`` long, so no piece tends to be small at the start or end."""
    pieces: list[tuple[int, int]] = []
    todo = [(0, size)]
    while todo:
        start, end = todo.pop()
        if (end - start) - average <= variation:
            pieces.append((start, end))
            continue
        mid = start + (end - start) // 2
        if variation > 0:
            mid += rng.randrange(-variation, variation)
        todo.append((mid, end))
        todo.append((start, mid))
    return pieces


async def pipe_slicer(stage: Stage, attrs: Mapping[str, int]) -> None:
    average, variation, delay = attrs["average_size"], attrs["size_variation"], attrs["delay"]
    while True:
        chunk = await stage.get()
        if chunk is None:
            stage.close()
            return
        data, ts = memoryview(chunk.data), chunk.ts
        for start, end in slice_offsets(len(data), average, variation, stage.rng):
            stage.held = [Chunk(data[start:], ts)]
            await stage.emit(Chunk(data[start:end], ts))
            stage.held = [Chunk(data[end:], ts)] if end < len(data) else []
            if delay > 0:
                await sleep_for(delay / 1_000_000)
        stage.held = []


def _check_bandwidth(attrs: Mapping[str, int]) -> str | None:
    # Toxiproxy itself panics on a negative rate; refuse it instead.
    return "bandwidth rate must not be negative" if attrs["rate"] < 0 else None


def _check_slicer(attrs: Mapping[str, int]) -> str | None:
    # Outside these bounds Toxiproxy's slicer recurses forever or slices out of range.
    if attrs["average_size"] < 1:
        return "slicer average_size must be at least 1"
    if not 0 <= attrs["size_variation"] < attrs["average_size"]:
        return "slicer size_variation must be at least 0 and less than average_size"
    return None


TYPES: dict[str, ToxicType] = {
    t.name: t
    for t in (
        ToxicType("noop", (), pipe_noop),
        # latency keeps many chunks in flight (Toxiproxy buffers 1024 chunks), so a delay
        # does not also cut throughput
        ToxicType("latency", ("latency", "jitter"), pipe_latency, buffer_bytes=32 * 1024 * 1024),
        ToxicType("bandwidth", ("rate",), pipe_bandwidth, check=_check_bandwidth),
        ToxicType("slow_close", ("delay",), pipe_slow_close),
        ToxicType("timeout", ("timeout",), pipe_timeout, closes_on_removal=True),
        ToxicType("reset_peer", ("timeout",), pipe_reset_peer),
        ToxicType(
            "slicer",
            ("average_size", "size_variation", "delay"),
            pipe_slicer,
            check=_check_slicer,
        ),
        ToxicType("limit_data", ("bytes",), pipe_limit_data),
    )
}


# -- request bodies ---------------------------------------------------------------------


def parse_direction(stream: str) -> str:
    direction = stream.lower()
    if direction not in DIRECTIONS:
        raise INVALID_STREAM
    return direction


def decode_attributes(
    ttype: ToxicType, raw: object, base: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Merge a request's ``attributes`` object onto ``base`` (zeros for a new toxic);
    unknown attributes are ignored, as Go's decoder does."""
    attrs = {name: 0 for name in ttype.attributes} if base is None else dict(base)
    if raw is not None:
        if not isinstance(raw, dict):
            raise jsonio.expected("an object for attributes", raw)
        for name in ttype.attributes:
            value = jsonio.field(raw, name)
            if value is not None:
                attrs[name] = jsonio.as_int64(value, f"attributes.{name}")
    problem = ttype.check(attrs)
    if problem is not None:
        raise jsonio.bad_body(problem)
    return attrs


def _toxicity(obj: Mapping[str, object], default: float) -> float:
    value = jsonio.field(obj, "toxicity")
    return default if value is None else jsonio.as_float32(value, "toxicity")


def new_toxic(body: bytes, exists: Callable[[str], bool]) -> Toxic:
    """A toxic from a ``POST /proxies/{proxy}/toxics`` body, checked in Toxiproxy's order:
    body, stream, type, duplicate name (409), attributes."""
    obj = jsonio.decode(body)
    if not isinstance(obj, dict):
        raise jsonio.expected("a JSON object (a toxic)", obj)
    name = jsonio.get_str(obj, "name") or ""
    type_name = jsonio.get_str(obj, "type") or ""
    stream = jsonio.get_str(obj, "stream") or DOWNSTREAM
    toxicity = _toxicity(obj, 1.0)
    raw_attrs = jsonio.field(obj, "attributes")
    if raw_attrs is not None and not isinstance(raw_attrs, dict):
        raise jsonio.expected("an object for attributes", raw_attrs)
    direction = parse_direction(stream)
    if not name:
        name = f"{type_name}_{stream}"
    ttype = TYPES.get(type_name)
    if ttype is None:
        raise INVALID_TOXIC_TYPE
    if exists(name):
        raise TOXIC_EXISTS
    attrs = decode_attributes(ttype, raw_attrs)
    return Toxic(name, ttype, stream, direction, toxicity, attrs)


def updated_toxic(toxic: Toxic, body: bytes) -> Toxic:
    """``toxic`` changed by a ``PATCH /proxies/{proxy}/toxics/{toxic}`` body: only
    ``attributes`` (merged) and ``toxicity`` change; name, type and stream cannot."""
    obj = jsonio.decode(body)
    if not isinstance(obj, dict):
        raise jsonio.expected("a JSON object (attributes, toxicity)", obj)
    toxicity = _toxicity(obj, toxic.toxicity)
    attrs = decode_attributes(toxic.type, jsonio.field(obj, "attributes"), toxic.attributes)
    return replace(toxic, toxicity=toxicity, attributes=attrs)


__all__ = [
    "DIRECTIONS",
    "DOWNSTREAM",
    "TYPES",
    "UPSTREAM",
    "ApiError",
    "Toxic",
    "ToxicType",
    "new_toxic",
    "slice_offsets",
    "updated_toxic",
]
