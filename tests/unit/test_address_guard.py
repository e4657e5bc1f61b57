"""harness.guard: the allowlist, its one-line refusal, and the redis-py clients it arms.

Refused connections never reach a socket, so nothing here needs a server: the addresses
used are on no allowlist (and nothing listens on them either).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio.cluster
import redis.asyncio.connection

from harness import guard
from harness.backends.base import control_client
from harness.errors import HarnessError
from harness.security import PLAIN

FOREIGN = ("192.0.2.7", 7001)  # TEST-NET-1: never a harness node
MESSAGE = (
    "address guard: refused to connect to 192.0.2.7:7001: "
    "not a node this harness started nor one named with --nodes"
)


@pytest.fixture
def owner() -> Iterator[object]:
    """A fresh owner, revoked afterwards: the allowlist is process-wide."""
    key = object()
    yield key
    guard.revoke(key)


def test_an_unknown_address_is_refused_in_one_line() -> None:
    with pytest.raises(guard.AddressRefused) as info:
        guard.check(*FOREIGN)
    assert str(info.value) == MESSAGE
    assert "\n" not in str(info.value)
    assert isinstance(info.value, HarnessError)  # printed alone by the CLI and the plugin
    assert info.value.addr == FOREIGN


def test_ipv6_addresses_are_shown_in_brackets() -> None:
    with pytest.raises(guard.AddressRefused, match=r"connect to \[2001:db8::1\]:6379: "):
        guard.check("2001:db8::1", 6379)


def test_allowed_until_revoked(owner: object) -> None:
    guard.allow(owner, [FOREIGN])
    guard.check(*FOREIGN)
    assert guard.allowed(*FOREIGN)
    assert not guard.allowed(FOREIGN[0], FOREIGN[1] + 1)  # the port is part of the address
    assert not guard.allowed("192.0.2.8", FOREIGN[1])
    guard.revoke(owner)
    assert not guard.allowed(*FOREIGN)


def test_owners_hold_their_grants_independently(owner: object) -> None:
    other = object()
    guard.allow(owner, [FOREIGN])
    guard.allow(other, [FOREIGN])
    guard.revoke(other)  # one cluster closing does not disallow another's node
    assert guard.allowed(*FOREIGN)
    guard.revoke(owner)
    assert not guard.allowed(*FOREIGN)
    guard.revoke(owner)  # twice is harmless


def test_spellings_of_one_address_match(owner: object) -> None:
    guard.allow(owner, [("[2001:DB8::1]", 6379), ("localhost", 7000)])
    assert guard.allowed("2001:db8::1", 6379)
    assert guard.allowed("127.0.0.1", 7000)  # redis-py resolves localhost so
    assert not guard.allowed("", 7000)  # an empty host is no address


def test_granted_lasts_for_the_block() -> None:
    with guard.granted([FOREIGN]):
        assert guard.allowed(*FOREIGN)
    assert not guard.allowed(*FOREIGN)


def test_the_refusal_behind_a_wrapping_error_is_found() -> None:
    refused = guard.AddressRefused(*FOREIGN)
    try:
        try:
            raise refused
        except guard.AddressRefused as exc:
            raise redis.exceptions.ConnectionError(str(exc)) from exc
    except redis.exceptions.ConnectionError as wrapped:
        assert guard.refusal(wrapped) is refused
    assert guard.refusal(OSError("unreachable")) is None


def test_connection_classes_are_guarded_once() -> None:
    sync = guard.guarded(redis.Connection)
    assert guard.guarded(redis.Connection) is sync
    assert guard.guarded(sync) is sync
    assert issubclass(sync, redis.Connection)
    tls = guard.guarded(redis.SSLConnection)
    assert issubclass(tls, redis.SSLConnection) and tls is not sync
    aio = guard.guarded(redis.asyncio.connection.Connection)
    assert asyncio.iscoroutinefunction(aio._connect)


def test_control_client_refuses_before_connecting() -> None:
    with control_client(*FOREIGN, 0.2, PLAIN) as c, pytest.raises(guard.AddressRefused) as info:
        c.execute_command("PING")
    assert str(info.value) == MESSAGE


def test_sync_cluster_client_refuses_foreign_seeds() -> None:
    with pytest.raises(guard.AddressRefused, match=r"192\.0\.2\.7:7001"):
        guard.cluster_client([FOREIGN])


def test_tls_pools_build_guarded_tls_connections() -> None:
    pool = guard.GuardedPool(host=FOREIGN[0], port=FOREIGN[1], ssl=True)
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert getattr(pool.connection_class, "_address_guard", False)


def test_async_cluster_client_refuses_what_the_map_would_name() -> None:
    client = redis.asyncio.cluster.RedisCluster(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(*FOREIGN)], socket_connect_timeout=0.2
    )
    guard.guard_async_cluster(client)
    manager = client.nodes_manager
    assert getattr(manager.connection_kwargs["connection_class"], "_address_guard", False)
    assert all(
        getattr(n.connection_class, "_address_guard", False) for n in manager.startup_nodes.values()
    )

    async def main() -> BaseException:
        try:
            await client.initialize()
        except BaseException as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("initialize() connected to a foreign address")

    err = asyncio.run(main())
    assert str(guard.refusal(err)) == MESSAGE
