"""harness.testing.expect_error on a real server: the exact error reply, code included,
and clear failures when no error or another one comes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import Cluster, ClusterSpec, key_for_slot
from harness import impl as impls
from harness.testing import expect_error, raw_commands


@pytest.fixture(scope="module", params=["redis-6.2", "redis-7.0", "valkey-8.0"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """One small cluster per verified implementation installed here, shared by the module."""
    found = impls.available(request.param)
    if found is None:
        pytest.skip(f"{request.param} is not installed (run scripts/setup-system.sh)")
    with Cluster.start(found, ClusterSpec(masters=2, replicas=0)) as c:
        yield c


def test_moved_comes_back_whole(cluster: Cluster) -> None:
    a, b = cluster.initial_masters
    slot = cluster.first_slot(b)
    key = key_for_slot(slot, prefix="t:")
    assert expect_error(a, "SET", key, "v") == f"MOVED {slot} {b.public_addr}"
    assert expect_error(a, "GET", key, code=None).startswith("MOVED ")


def test_other_codes_come_back_whole(cluster: Cluster) -> None:
    a = cluster.initial_masters[0]
    got = expect_error(a, "MSET", "x:a", 1, "x:b", 2, code="CROSSSLOT")
    assert got.startswith("CROSSSLOT ") and len(got) > len("CROSSSLOT ")
    assert expect_error(a, "NOSUCHCOMMAND", code="ERR").startswith("ERR unknown command")
    key = key_for_slot(cluster.first_slot(a), prefix="t:")
    a.call("SET", key, "string")
    assert expect_error(a, "LPUSH", key, "x", code="WRONGTYPE").startswith("WRONGTYPE ")


def test_a_success_or_another_code_fails_the_test(cluster: Cluster) -> None:
    a, b = cluster.initial_masters
    own = key_for_slot(cluster.first_slot(a), prefix="t:")
    with pytest.raises(
        AssertionError, match=r"SET t:\S+ v should fail with a MOVED error, but replied 'OK'"
    ):
        expect_error(a, "SET", own, "v")
    other = key_for_slot(cluster.first_slot(b), prefix="t:")
    with pytest.raises(
        AssertionError, match=r"should fail with a CROSSSLOT error, got 'MOVED \d+ "
    ):
        expect_error(a, "GET", other, code="CROSSSLOT")


def test_commands_before_share_the_connection(cluster: Cluster) -> None:
    a = cluster.initial_masters[0]
    key = key_for_slot(cluster.first_slot(a), prefix="t:")
    replies = raw_commands(a, ("CLIENT", "SETNAME", "probe"), ("CLIENT", "GETNAME"), ("GET", key))
    assert replies[:2] == ["OK", b"probe"]
    with pytest.raises(AssertionError, match=r"BOGUS \(before GET"):
        expect_error(a, "GET", key, before=[("BOGUS",)])
