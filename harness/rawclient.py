"""A lean cluster client for recorded workloads at high rates (``engine="raw"``).

redis-py's asyncio cluster client spends about 65 us of CPU per command (routing, retry
machinery, a coroutine and a future per call), which caps a recorded workload at roughly
a tenth of what the servers can do. This driver does only what a workload needs, with one
callback per reply and no coroutine per operation:

* each workload client keeps one operation in flight, on its own connection per node
  (like ``redis-benchmark -P 1``), so every operation's outcome is exact;
* routing by a slot map read from ``CLUSTER NODES``; ``MOVED`` updates the slot and
  resends to the named node, ``ASK`` resends once with ``ASKING``; the operation's outcome
  is that of the last attempt, within the operation's one deadline;
* outcomes as in :mod:`harness.history`: a reply is ``ok``, an error reply ``fail``, a
  connection that could not be made ``fail`` (nothing was sent), a timeout or a connection
  lost after sending ``info``; after a connection problem the slot map is re-read.

It speaks RESP2 for SADD, SET, GET and INCR only; anything else stays with redis-py. On a
password, ACL or TLS cluster (:mod:`harness.security`) connections are made with the
cluster's SSL context and send AUTH ahead of the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from harness import guard
from harness.backends.base import control_client
from harness.crc16 import SLOTS, key_slot
from harness.history import Op
from harness.security import PLAIN, Security
from harness.topology import parse_cluster_nodes

Addr = tuple[str, int]
MAX_REDIRECTS = 5
REFRESH_INTERVAL_S = 0.05  # at most one slot-map read per interval


class ReplyError(Exception):
    """An error reply (``-MOVED ...``, ``-CLUSTERDOWN ...``)."""


class ProtocolError(Exception):
    """Bytes that are not a RESP2 reply to the commands sent."""


class NotSent(Exception):
    """The connection was never made, so the request never left: definitely not applied."""


def parse_reply(buf: bytes | bytearray, start: int = 0) -> tuple[Any, int] | None:
    """One RESP2 simple/error/integer/bulk reply at ``start``: ``(value, end)``, or None
    while incomplete. Values: bytes, int, None (nil) or :class:`ReplyError`."""
    eol = buf.find(b"\r\n", start)
    if eol < 0:
        return None
    kind = buf[start]
    if kind == 43:  # +
        return bytes(buf[start + 1 : eol]), eol + 2
    if kind == 58:  # :
        return int(buf[start + 1 : eol]), eol + 2
    if kind == 45:  # -
        return ReplyError(bytes(buf[start + 1 : eol]).decode(errors="replace")), eol + 2
    if kind == 36:  # $
        length = int(buf[start + 1 : eol])
        if length < 0:
            return None, eol + 2
        end = eol + 2 + length
        if len(buf) < end + 2:
            return None
        return bytes(buf[eol + 2 : end]), end + 2
    raise ProtocolError(f"unexpected reply type {chr(kind)!r}")


def bulk(part: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(part), part)


def encode(*parts: bytes) -> bytes:
    """A command as a RESP array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


ASKING = encode(b"ASKING")


COMMANDS = {"add": b"SADD", "write": b"SET", "read": b"GET", "incr": b"INCR"}
WITH_VALUE = frozenset({"add", "write"})  # the others send the key alone


class _Conn(asyncio.Protocol):
    """One connection of one workload client to one node; at most one request in flight."""

    def __init__(self, driver: Driver, addr: Addr) -> None:
        self.driver = driver
        self.addr = addr
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: Callable[[Any], None] | None = None  # gets the reply or an exception
        self.skip = 0  # replies to drop first (ASKING's +OK)
        self.unsent = b""  # written once connected
        self.closed = False
        self.authenticating = bool(driver.auth)  # AUTH's reply comes first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.closed:  # given up while connecting
            transport.abort()  # type: ignore[attr-defined]
            return
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.unsent or self.authenticating:
            transport.write(self.driver.auth + self.unsent)  # type: ignore[attr-defined]
            self.unsent = b""

    def send(self, payload: bytes, waiter: Callable[[Any], None], skip: int = 0) -> None:
        self.waiter = waiter
        self.skip = skip
        if self.transport is None:
            self.unsent = payload
        else:
            self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while pos < len(buf):
            try:
                parsed = parse_reply(buf, pos)
            except (ProtocolError, ValueError) as exc:
                self.fail(exc)
                return
            if parsed is None:
                break
            value, pos = parsed
            if self.authenticating:
                self.authenticating = False
                if isinstance(value, ReplyError):  # the request after it was refused too
                    self.fail(ReplyError(f"{value} (AUTH refused)"))
                    return
                continue
            if self.skip:
                self.skip -= 1
                continue
            waiter, self.waiter = self.waiter, None
            if waiter is not None:
                waiter(value)
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.driver.forget(self)
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter(ConnectionError(f"connection to {self.addr[0]}:{self.addr[1]} lost"))

    def fail(self, exc: BaseException) -> None:
        """Give up on this connection: the waiter gets ``exc``, a late reply nobody."""
        waiter, self.waiter = self.waiter, None
        self.closed = True
        self.driver.forget(self)
        if self.transport is not None:
            self.transport.abort()
        if waiter is not None:
            waiter(exc)


class _Client:
    """One workload client: issues its next operation when the previous one completed."""

    def __init__(self, driver: Driver, cid: int, choose: Callable[[], tuple[str, str, Any]]):
        self.driver = driver
        self.cid = cid
        self.choose = choose
        self.conns: dict[Addr, _Conn] = {}
        self.op: Op | None = None
        self.payload = b""
        self.redirects = 0
        self.conn: _Conn | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.next_at = 0.0

    def start(self) -> None:
        d = self.driver
        if d.refused is not None or not d.may_start():
            self.op = None
            d.client_done()
            return
        kind, key, value = self.choose()
        slot = d.slots_of[key]
        payload = d.prefix[kind, key]
        if kind in WITH_VALUE:
            payload += bulk(b"%d" % value)
        self.payload = payload
        self.redirects = 0
        self.op = Op(d.next_id(), self.cid, kind, key, slot, value, time.monotonic_ns())
        self.timer = d.loop.call_later(d.timeout_s, self.on_timeout)
        self.send(d.slot_map[slot])

    def send(self, addr: Addr | None, asking: bool = False) -> None:
        if addr is None:
            self.driver.refresh()
            self.finish("fail", "ClusterDownError: no node known for the slot")
            return
        assert self.op is not None
        self.op.node = f"{addr[0]}:{addr[1]}"
        conn = self.conns.get(addr)
        if conn is None or conn.closed:
            try:
                conn = self.conns[addr] = self.driver.connect(addr)
            except guard.AddressRefused as exc:  # nothing sent; the whole run stops
                self.driver.refuse(exc)
                self.finish("fail", str(exc))
                return
        self.conn = conn
        if asking:
            conn.send(ASKING + self.payload, self.on_reply, skip=1)
        else:
            conn.send(self.payload, self.on_reply)

    def on_reply(self, reply: Any) -> None:
        op = self.op
        if op is None:  # the operation already ended (timeout)
            return
        if isinstance(reply, ReplyError):
            text = str(reply)
            word, _, rest = text.partition(" ")
            if word in ("MOVED", "ASK") and self.redirects < MAX_REDIRECTS:
                self.redirects += 1
                host, _, port = rest.partition(" ")[2].rpartition(":")
                if not host and self.conn is not None:  # "MOVED 12 :7001": the same host
                    host = self.conn.addr[0]
                addr = (host, int(port))
                if word == "MOVED":
                    self.driver.slot_map[op.slot] = addr
                    self.driver.refresh()
                self.send(addr, asking=word == "ASK")
                return
            self.finish("fail", f"ResponseError: {text}")
        elif isinstance(reply, BaseException):
            self.driver.refresh()
            outcome = "fail" if isinstance(reply, NotSent) else "info"
            self.finish(outcome, f"{type(reply).__name__}: {reply}")
        else:
            if op.kind == "read":
                op.value = None if reply is None else int(reply)
            self.finish("ok", None)

    def on_timeout(self) -> None:
        self.timer = None
        conn = self.conn
        if conn is not None:
            if conn.transport is None:
                conn.fail(NotSent(f"could not connect to {conn.addr[0]}:{conn.addr[1]} in time"))
            else:
                conn.fail(TimeoutError(f"no reply within {self.driver.timeout_s} s"))

    def finish(self, outcome: str, error: str | None) -> None:
        op = self.op
        assert op is not None
        self.op = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        op.complete_ns = time.monotonic_ns()
        op.outcome = outcome  # type: ignore[assignment]
        op.error = error
        d = self.driver
        d.record(op)
        delay = 0.0
        if d.interval:  # pacing to the rate, as the redis-py engine does
            self.next_at += d.interval
            delay = self.next_at - time.monotonic()
            if delay <= 0:
                self.next_at = time.monotonic()
        if delay > 0:
            d.loop.call_later(delay, self.start)
        else:
            d.loop.call_soon(self.start)  # never recurse: failures can be immediate


class Driver:
    """Runs ``len(choosers)`` clients until ``may_start`` says no; :meth:`run` returns when
    every client has finished its last operation."""

    def __init__(
        self,
        startup: Sequence[Addr],
        keys: Sequence[str],
        choosers: Sequence[Callable[[], tuple[str, str, Any]]],
        *,
        may_start: Callable[[], bool],
        record: Callable[[Op], None],
        next_id: Callable[[], int],
        timeout_s: float,
        rate: float | None,
        security: Security = PLAIN,
    ) -> None:
        self.startup = list(startup)
        self.security = security
        self.ssl = security.ssl_context()
        self.auth = (
            encode(*(a.encode() for a in security.auth_args())) if security.auth_args() else b""
        )
        self.slots_of = {k: key_slot(k) for k in keys}
        # each command up to its value, encoded once: the hot path appends the value only
        self.prefix = {
            (kind, k): b"*%d\r\n" % (3 if kind in WITH_VALUE else 2) + bulk(name) + bulk(k.encode())
            for kind, name in COMMANDS.items()
            for k in keys
        }
        self.choosers = choosers
        self.may_start = may_start
        self.record = record
        self.next_id = next_id
        self.timeout_s = timeout_s
        self.interval = len(choosers) / rate if rate else 0.0
        self.slot_map: list[Addr | None] = [None] * SLOTS
        self.conns: set[_Conn] = set()
        self._running = 0
        self._done: asyncio.Future[None] | None = None
        self._refreshing = False
        self._last_refresh = 0.0
        self.refused: guard.AddressRefused | None = None
        self.loop = asyncio.get_running_loop()  # built inside the loop that runs it

    # -- slot map --------------------------------------------------------------------
    def read_slot_map(self) -> list[Addr | None]:
        """The masters' slots from the first start-up node that answers (blocking)."""
        errors = []
        for host, port in self.startup:
            try:
                timeout = max(self.timeout_s, 0.5)
                with control_client(host, port, timeout, self.security) as c:
                    entries = parse_cluster_nodes(str(c.execute_command("CLUSTER", "NODES")))
            except redis.exceptions.RedisError as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            slot_map: list[Addr | None] = [None] * SLOTS
            for e in entries:
                if e.is_master and "fail" not in e.flags:
                    for first, last in e.slots:
                        slot_map[first : last + 1] = [(e.host or host, e.port)] * (last - first + 1)
            return slot_map
        raise ConnectionError("no start-up node answered CLUSTER NODES: " + "; ".join(errors))

    def refresh(self) -> None:
        """Re-read the slot map in the background (rate-limited; one at a time)."""
        now = time.monotonic()
        if self._refreshing or now - self._last_refresh < REFRESH_INTERVAL_S:
            return
        self._refreshing = True
        self._last_refresh = now

        def done(fut: asyncio.Future[list[Addr | None]]) -> None:
            self._refreshing = False
            if not fut.cancelled() and fut.exception() is None:
                self.slot_map[:] = fut.result()

        self.loop.run_in_executor(None, self.read_slot_map).add_done_callback(done)

    # -- connections -----------------------------------------------------------------
    def connect(self, addr: Addr) -> _Conn:
        guard.check(*addr)  # before any packet: the map may name anything
        conn = _Conn(self, addr)
        self.conns.add(conn)

        async def make() -> None:
            try:  # bounded, so connects to an unreachable node do not pile up
                await asyncio.wait_for(
                    self.loop.create_connection(lambda: conn, addr[0], addr[1], ssl=self.ssl),
                    self.timeout_s,
                )
            except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
                if not conn.closed:
                    reason = f"{type(exc).__name__}: {exc}"
                    conn.fail(NotSent(f"Error connecting to {addr[0]}:{addr[1]}: {reason}"))

        self.loop.create_task(make())
        return conn

    def refuse(self, exc: guard.AddressRefused) -> None:
        """End :meth:`run` with ``exc``: the cluster directs load at a foreign address."""
        self.refused = exc
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    def forget(self, conn: _Conn) -> None:
        self.conns.discard(conn)

    # -- run -------------------------------------------------------------------------
    def client_done(self) -> None:
        self._running -= 1
        if self._running == 0 and self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def run(self) -> None:
        self.slot_map = await self.loop.run_in_executor(None, self.read_slot_map)
        self._done = self.loop.create_future()
        clients = [_Client(self, cid, choose) for cid, choose in enumerate(self.choosers)]
        self._running = len(clients)
        now = time.monotonic()
        for i, c in enumerate(clients):  # paced clients start staggered over one interval
            offset = i * self.interval / len(clients)
            c.next_at = now + offset
            self.loop.call_later(offset, c.start)
        try:
            await self._done
        finally:
            for conn in list(self.conns):
                if conn.transport is not None:
                    conn.transport.close()
