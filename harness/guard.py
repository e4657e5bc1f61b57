"""The address guard: the harness connects only to addresses it created or the user named.

A cluster tells its clients where to go: ``CLUSTER SLOTS``, ``MOVED`` and ``ASK`` name
an address, and a client follows. A misconfigured node (a stale ``cluster-announce-ip``,
a node of another cluster that joined by mistake, a NAT address) could so direct the
harness's load at any machine. Every connection the harness makes therefore passes one
check against a process-wide allowlist of (host, port):

- nodes a backend starts, registered before they start (readiness waits connect while
  they come up) and revoked when the backend closes;
- listeners of the proxies the harness asks Toxiproxy for, revoked when deleted;
- nodes the user named with ``--nodes`` (the external backend), for the whole process.

Anything else raises :class:`AddressRefused` (one line) before a packet is sent: the
redis-py clients get connection classes that check in their connect path (sync and
asyncio, TLS too), the raw workload engine and raw sockets call :func:`check` first.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.cluster

from harness.errors import HarnessError

Addr = tuple[str, int]
#: owner of the addresses the user named (``--nodes``): kept for the whole process
NAMED = "--nodes"
WHY = "not a node this harness started nor one named with --nodes"


class AddressRefused(HarnessError):
    """A connection to an address that is on no allowlist; nothing was sent to it."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        super().__init__(f"address guard: refused to connect to {show(host, port)}: {WHY}")


def refusal(exc: BaseException) -> AddressRefused | None:
    """The refusal behind ``exc``, if any: redis-py's asyncio connections wrap whatever
    their connect raises in a ``ConnectionError``."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, AddressRefused):
        seen = seen.__cause__ or seen.__context__
    return seen


def show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def normal(host: str, port: int) -> Addr:
    """One spelling per address: no IPv6 brackets, lower case, ``localhost`` as the
    loopback address redis-py resolves it to. Nothing is looked up."""
    h = host.strip().strip("[]").lower()
    return ("127.0.0.1" if h == "localhost" else h), int(port)


_lock = threading.Lock()
_grants: dict[Hashable, set[Addr]] = {}


def allow(owner: Hashable, addrs: Iterable[tuple[str, int]]) -> None:
    """Let the harness connect to ``addrs`` until ``owner`` is revoked."""
    with _lock:
        _grants.setdefault(owner, set()).update(normal(h, p) for h, p in addrs)


def revoke(*owners: Hashable) -> None:
    """Withdraw every address granted to ``owners`` (others keep theirs)."""
    with _lock:
        for owner in owners:
            _grants.pop(owner, None)


@contextmanager
def granted(addrs: Iterable[tuple[str, int]]) -> Iterator[None]:
    """``addrs`` allowed inside the block only."""
    owner = object()
    allow(owner, addrs)
    try:
        yield
    finally:
        revoke(owner)


def allowed(host: str, port: int) -> bool:
    addr = normal(host, port)
    with _lock:
        return any(addr in addrs for addrs in _grants.values())


def check(host: str, port: int) -> None:
    """Raise :class:`AddressRefused` unless (host, port) is allowed."""
    if not allowed(host, port):
        raise AddressRefused(host, port)


# -- redis-py --------------------------------------------------------------------------
# Both connection families open their socket in ``_connect`` (TLS subclasses wrap the
# plain one's), so a subclass that checks there covers every way redis-py connects.

C = TypeVar("C", bound=type)
_guarded: dict[type, type] = {}


def _body(base: type) -> dict[str, Any]:
    if issubclass(base, redis.asyncio.connection.AbstractConnection):

        async def connect_async(self: Any) -> Any:
            check(self.host, self.port)
            return await base._connect(self)  # type: ignore[no-untyped-call]

        return {"_connect": connect_async}

    def connect(self: Any) -> Any:
        check(self.host, self.port)
        return base._connect(self)  # type: ignore[attr-defined]

    return {"_connect": connect}


def guarded(cls: C) -> C:
    """``cls`` (a redis-py connection class, sync or asyncio) checking the address
    before it connects; one subclass per class, and a guarded class stays as it is."""
    if getattr(cls, "_address_guard", False):
        return cls
    with _lock:
        made = _guarded.get(cls)
        if made is None:
            made = _guarded[cls] = type(f"Guarded{cls.__name__}", (cls,), _body(cls))
            made._address_guard = True  # type: ignore[attr-defined]
    return made  # type: ignore[return-value]


def guard_client(client: redis.Redis) -> redis.Redis:
    """A fresh (not yet connected) ``redis.Redis`` whose connections are checked."""
    pool = client.connection_pool
    pool.connection_class = guarded(pool.connection_class)
    return client


class GuardedPool(redis.ConnectionPool):
    """The pool of each node of a sync :class:`redis.cluster.RedisCluster` (see
    :func:`cluster_client`): TLS or not, its connections are checked."""

    def __init__(self, connection_class: type = redis.Connection, **kwargs: Any) -> None:
        if kwargs.pop("ssl", False):
            connection_class = redis.SSLConnection
        super().__init__(connection_class=guarded(connection_class), **kwargs)


def cluster_client(seeds: list[Addr], **kwargs: Any) -> redis.cluster.RedisCluster:
    """A sync cluster client whose every node connection (seeds, ``CLUSTER SLOTS``,
    ``MOVED``, ``ASK``) is checked: only in its ``url`` form does redis-py build the
    nodes' pools with ``connection_pool_class``; the other seeds join as startup nodes."""
    for host, port in seeds:
        check(host, port)
    first, *rest = seeds
    startup = [redis.cluster.ClusterNode(h, p) for h, p in rest]  # type: ignore[no-untyped-call]
    return redis.cluster.RedisCluster(
        url=f"redis://{show(*first)}",
        startup_nodes=startup,
        connection_pool_class=GuardedPool,
        **kwargs,
    )


def guard_async_cluster(
    client: redis.asyncio.cluster.RedisCluster,
) -> redis.asyncio.cluster.RedisCluster:
    """A fresh (not yet initialized) asyncio cluster client whose node connections are
    checked: its nodes take their connection class from one shared kwargs dict."""
    manager = client.nodes_manager
    kwargs = manager.connection_kwargs
    kwargs["connection_class"] = guarded(
        kwargs.get("connection_class", redis.asyncio.connection.Connection)
    )
    for node in [*manager.startup_nodes.values(), *manager.nodes_cache.values()]:
        node.connection_class = guarded(node.connection_class)
    return client
