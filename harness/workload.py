"""Recorded client workloads: asyncio clients (redis-py's asyncio RedisCluster) that do
bounded, seeded work against a cluster and record every operation in a :class:`History`.

- **set**: each client adds unique integers to sets (SADD); after healing, one final read
  (SMEMBERS) per key. Lost = acknowledged adds missing from the final read.
- **register**: versioned SET/GET. Each key has one writer (its versions strictly
  increase) and any client reads, so a read lower than a completed write is stale.
- **counter**: INCR; the final value must lie between acknowledged and attempted.

The client makes exactly one attempt per operation (no retries), so every outcome is
exact: an error reply is ``fail``, a timeout or a dropped connection is ``info``. It still
follows MOVED/ASK redirections (the command did not run where it was redirected from) and
refreshes its slot map after errors. Keys are spread over the whole slot space, so every
master gets traffic. The workload runs on its own thread and event loop; tests stay
synchronous and drive faults while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import redis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from harness import guard, progress, rawclient
from harness.crc16 import SLOTS, key_for_slot, key_slot
from harness.errors import HarnessError, UsageError
from harness.history import History, Op, classify_error
from harness.loops import LoopKind, loop_factory
from harness.wait import Hopeless, wait_for

if TYPE_CHECKING:
    from harness.cluster import Cluster

Kind = Literal["set", "register", "counter"]
#: how long a client may take to read the slot map before the load starts (start() waits
#: 10 s for the first operation)
CONNECT_S = 8.0
KINDS: tuple[Kind, ...] = ("set", "register", "counter")
Engine = Literal["redis-py", "raw"]
ENGINES: tuple[Engine, ...] = ("redis-py", "raw")


@dataclass(frozen=True)
class WorkloadSpec:
    kind: Kind = "set"
    clients: int = 4
    keys: int = 24  # spread evenly over the slot space
    rate: float | None = 500.0  # total ops/s; None = as fast as the clients go
    max_ops: int = 200_000  # bound on the whole run, whatever happens
    timeout_s: float = 0.5  # per operation; beyond it the outcome is unknown
    read_ratio: float = 0.5  # register: share of reads
    seed: int = 0
    # "redis-py": redis-py's asyncio RedisCluster (the reference client behaviour);
    # "raw": harness.rawclient, several times the rate for load-heavy runs
    engine: Engine = "redis-py"
    loop: LoopKind = "auto"  # uvloop when installed
    #: before every key (``harness:<run id>:``): a cluster shared with other data can
    #: tell the workload's keys apart; it must hold no hash tag, or all keys share a slot
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"workload {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.engine not in ENGINES:
            raise UsageError(f"engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if not 1 <= self.clients <= 256:
            raise UsageError(f"clients={self.clients}: use 1..256")
        if not 1 <= self.keys <= SLOTS:
            raise UsageError(f"keys={self.keys}: use 1..{SLOTS}")
        if self.rate is not None and self.rate <= 0:
            raise UsageError(f"rate={self.rate}: use a positive number of ops/s, or None")
        if "{" in self.prefix:
            raise UsageError(
                f"prefix={self.prefix!r}: no '{{' (a hash tag puts every key in one slot)"
            )


def spread_keys(kind: str, count: int, seed: int, prefix: str = "") -> list[str]:
    """``count`` keys on slots spread evenly over 0..16383 (offset by the seed)."""
    offset = random.Random(seed).randrange(SLOTS // count) if count < SLOTS else 0
    return [
        key_for_slot((i * SLOTS // count + offset) % SLOTS, prefix=f"{prefix}{kind}:{seed}:")
        for i in range(count)
    ]


class Workload:
    """One workload against one cluster. Use :meth:`running` around the faults, then
    :meth:`final_read` after healing; :attr:`history` holds everything."""

    def __init__(self, cluster: Cluster, spec: WorkloadSpec) -> None:
        self.cluster = cluster
        self.spec = spec
        self.history = History()
        self.keys = spread_keys(spec.kind, spec.keys, spec.seed, spec.prefix)
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._trace = ""
        self._versions = {k: 0 for k in self.keys}
        self._lock = threading.Lock()

    # -- client --------------------------------------------------------------------
    def _client(self) -> AsyncRedisCluster:
        nodes = [ClusterNode(n.public_host, n.public_port) for n in self.cluster.live_nodes()]
        client = AsyncRedisCluster(
            startup_nodes=nodes,
            decode_responses=True,
            socket_timeout=self.spec.timeout_s,
            socket_connect_timeout=self.spec.timeout_s,
            retry=Retry(NoBackoff(), 0),
            require_full_coverage=False,
            **self.cluster.security.redis_kwargs(),
        )
        return guard.guard_async_cluster(client)  # follows the map to allowed addresses only

    async def _connected(self) -> AsyncRedisCluster:
        """A client that has read the slot map. Its timeouts are the short per-operation
        ones, so on a loaded machine (TLS handshakes) the first read may time out: that
        is "not yet", retried with a new client until :data:`CONNECT_S`; other errors end
        it at once."""
        deadline = time.monotonic() + CONNECT_S
        while True:
            client = self._client()
            try:
                await client.initialize()
                return client
            except (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError):
                with contextlib.suppress(Exception):
                    await client.aclose()
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)  # a poll interval, as in harness.wait

    def _record(self, op: Op) -> None:
        with self._lock:
            self.history.ops.append(op)

    async def _do(self, client: AsyncRedisCluster, cid: int, kind: str, key: str, value: Any) -> Op:
        op = Op(next(self._ids), cid, kind, key, key_slot(key), value, time.monotonic_ns())
        try:
            with contextlib.suppress(Exception):
                target = client.get_node_from_key(key)
                op.node = target.name if target is not None else None
            if kind == "add":
                await client.sadd(key, value)
            elif kind == "write":
                await client.set(key, value)
            elif kind == "read":
                raw = await client.get(key)
                op.value = None if raw is None else int(raw)
            elif kind == "incr":
                await client.incr(key)
            op.outcome = "ok"
        except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
            if (refused := guard.refusal(exc)) is not None:
                raise refused from None  # load directed elsewhere: stop (nothing was sent)
            op.outcome, op.error = classify_error(exc)
        except guard.AddressRefused:
            raise
        except (Exception, asyncio.CancelledError) as exc:
            # A client bug mid-request (seen: redis-py cancelling its own read, or writing
            # to a connection it just dropped): the op may or may not have run. Nothing
            # here cancels these tasks, so a CancelledError is the client's, not ours.
            op.outcome, op.error = "info", f"{type(exc).__name__}: {exc}"
        op.complete_ns = time.monotonic_ns()
        self._record(op)
        return op

    def _chooser(self, cid: int) -> Callable[[], tuple[str, str, Any]]:
        """Client ``cid``'s seeded sequence of (kind, key, value) operations."""
        spec = self.spec
        rng = random.Random(f"{spec.seed}:{cid}")
        keys = self.keys
        mine = [k for i, k in enumerate(keys) if i % spec.clients == cid] or keys
        counter = itertools.count(cid * 1_000_000_000 + 1)
        versions = self._versions

        def choose() -> tuple[str, str, Any]:
            if spec.kind == "set":
                return "add", rng.choice(keys), next(counter)
            if spec.kind == "counter":
                return "incr", rng.choice(keys), 1
            if rng.random() < spec.read_ratio:
                return "read", rng.choice(keys), None
            key = rng.choice(mine)
            versions[key] += 1  # this client is the key's only writer
            return "write", key, versions[key]

        return choose

    def _may_start(self, budget: list[int]) -> bool:
        if self._stop.is_set() or budget[0] <= 0:
            return False
        budget[0] -= 1
        return True

    async def _client_loop(self, client: AsyncRedisCluster, cid: int, budget: list[int]) -> None:
        interval = self.spec.clients / self.spec.rate if self.spec.rate else 0.0
        next_at = time.monotonic()
        choose = self._chooser(cid)
        while self._may_start(budget):
            kind, key, value = choose()
            await self._do(client, cid, kind, key, value)
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing to the rate, not synchronisation
                else:
                    next_at = time.monotonic()

    async def _main(self) -> None:
        budget = [self.spec.max_ops]
        if self.spec.engine == "raw":
            driver = rawclient.Driver(
                [(n.public_host, n.public_port) for n in self.cluster.live_nodes()],
                self.keys,
                [self._chooser(c) for c in range(self.spec.clients)],
                may_start=lambda: self._may_start(budget),
                record=self._record,
                next_id=lambda: next(self._ids),
                timeout_s=self.spec.timeout_s,
                rate=self.spec.rate,
                security=self.cluster.security,
            )
            await driver.run()
            return
        client = await self._connected()
        try:
            await asyncio.gather(
                *(self._client_loop(client, c, budget) for c in range(self.spec.clients))
            )
        finally:
            with contextlib.suppress(Exception):  # a half-broken client may fail to close
                await client.aclose()

    def _thread_main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory(self.spec.loop)) as runner:
                runner.run(self._main())
        except BaseException as exc:  # reported by stop(), with where it came from
            self._error = guard.refusal(exc) or exc
            self._trace = "".join(traceback.format_exception(exc))

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Workload:
        progress.track(self.history)
        progress.phase(f"load running: {self.spec.kind}, {self.spec.clients} clients")
        self._thread = threading.Thread(
            target=self._thread_main, name=f"workload-{self.spec.kind}", daemon=True
        )
        self._thread.start()
        wait_for(
            lambda: (len(self.history.ops) > 0 or self._error is not None, len(self.history.ops)),
            10,
            "first op",
        )
        if isinstance(self._error, guard.AddressRefused):
            raise guard.AddressRefused(*self._error.addr) from None
        if self._error is not None:
            raise HarnessError(f"workload could not start: {self._error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            running = self._thread.is_alive()
            self._thread.join(timeout=30)
            if running:
                progress.phase("load stopped")
            if self._thread.is_alive():
                raise HarnessError("workload did not stop within 30 s")
        if isinstance(self._error, guard.AddressRefused):  # one line, as it was raised
            raise guard.AddressRefused(*self._error.addr) from None
        if self._error is not None:
            raise HarnessError(
                f"workload failed: {type(self._error).__name__}: {self._error}\n{self._trace}"
            )

    @contextlib.contextmanager
    def running(self) -> Iterator[Workload]:
        """Run for the duration of the block (faults go inside); always stops."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def wait_ops(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` more operations completed (a way to let load run without
        sleeping for a fixed time)."""
        target = len(self.history.ops) + count

        def probe() -> tuple[bool, int]:
            done = len(self.history.ops)
            if done < target and (self._thread is None or not self._thread.is_alive()):
                raise Hopeless(
                    f"waiting for {count} more ops: the workload ended after {done} ops "
                    f"(max_ops={self.spec.max_ops}){'; ' + str(self._error) if self._error else ''}"
                )
            return done >= target, done

        wait_for(probe, timeout, f"{count} more ops")

    def remove_keys(self) -> None:
        """Delete every key of this workload: on a cluster the harness does not own it
        leaves nothing behind. Keys it could not delete are named in the error."""
        client = self.cluster.client(socket_timeout=2.0)
        left: list[str] = []
        last = ""
        for key in self.keys:
            try:
                client.delete(key)
            except redis.exceptions.RedisError as exc:
                left.append(key)
                last = f"{type(exc).__name__}: {exc}"
        if left:
            raise HarnessError(
                f"{len(left)} workload key(s) left on the cluster, e.g. {left[0]!r} ({last})"
            )

    def final_read(self, timeout: float = 30) -> History:
        """After healing: read every key (retrying until each read succeeds), record the
        reads, attach the cluster's fault timeline, and return the history."""
        if self.spec.kind == "register":
            self.history.events = list(self.cluster.events)
            return self.history
        progress.phase(f"final read: {len(self.keys)} keys")
        client = self.cluster.client(socket_timeout=2.0)
        for key in self.keys:

            def read(key: str = key) -> tuple[bool, Any]:
                if self.spec.kind == "set":
                    return True, sorted(int(v) for v in client.smembers(key))
                raw = client.get(key)
                return True, 0 if raw is None else int(raw)

            t0 = time.monotonic_ns()
            value = wait_for(read, timeout, f"final read of {key}")
            self._record(
                Op(
                    next(self._ids),
                    -1,
                    "final-read",
                    key,
                    key_slot(key),
                    value,
                    t0,
                    time.monotonic_ns(),
                    "ok",
                )
            )
        self.history.events = list(self.cluster.events)
        return self.history
