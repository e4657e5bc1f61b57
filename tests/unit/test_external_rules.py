"""The external backend's pure rules: ``--nodes`` parsing, which options go together,
identifying a server from ``INFO server``, and which tests an external cluster skips."""

from __future__ import annotations

import re
from typing import Any

import pytest

from harness import options
from harness.backends.external import (
    Discovery,
    ExternalNode,
    check_options,
    identify,
    parse_nodes,
)
from harness.errors import UsageError
from harness.plugin.external import destructive_reason, keyspace_reason, mismatch


def test_nodes_parse_hosts_ipv6_and_spaces() -> None:
    assert parse_nodes("127.0.0.1:7000, db-1.example:6379,[::1]:7001") == [
        ("127.0.0.1", 7000),
        ("db-1.example", 6379),
        ("::1", 7001),
    ]


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("127.0.0.1", "'127.0.0.1'"),
        ("a:1,", "''"),
        ("a:0", "'a:0'"),
        ("a:65536", "'a:65536'"),
        ("a b:1", "'a b:1'"),
    ],
)
def test_malformed_nodes_are_named(text: str, bad: str) -> None:
    with pytest.raises(UsageError, match=re.escape(f"{bad} is not HOST:PORT")):
        parse_nodes(text)


def test_a_node_named_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="a:1 is named twice"):
        parse_nodes("a:1,a:1")


def test_nodes_and_backend_go_together() -> None:
    assert check_options("external", "a:1") == [("a", 1)]
    assert check_options("local", None) == []
    with pytest.raises(UsageError, match="--backend external needs --nodes"):
        check_options("external", None)
    with pytest.raises(UsageError, match="--nodes is for --backend external"):
        check_options("local", "a:1")


@pytest.mark.parametrize(
    ("info", "profile"),
    [
        ({"redis_version": "7.0.15"}, "redis-7.0"),
        ({"redis_version": "6.2.14"}, "redis-6.2"),
        # Valkey keeps redis_version at 7.2.4 for clients; its own version is apart
        (
            {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.0.1"},
            "valkey-8.0",
        ),
    ],
)
def test_server_identified_from_info(info: dict[str, str], profile: str) -> None:
    impl = identify(info, "h:1")
    assert impl.name == profile
    assert impl.binary == "external h:1"


def test_impl_must_agree_with_the_server() -> None:
    with pytest.raises(
        UsageError, match=re.escape("--impl valkey-8.0: the cluster at h:1 runs redis 7.0.15")
    ):
        identify({"redis_version": "7.0.15"}, "h:1", "valkey-8.0")
    with pytest.raises(UsageError, match="matches no profile"):
        identify({"redis_version": "3.0.0"}, "h:1")


def _found(replicas_per_master: list[int]) -> Discovery:
    nodes, master_of = [], {}
    for m, count in enumerate(replicas_per_master):
        nodes.append(ExternalNode(len(nodes), "h", 7000 + m, f"m{m}"))
        for r in range(count):
            nodes.append(ExternalNode(len(nodes), "h", 8000 + 10 * m + r, f"r{m}{r}"))
            master_of[f"r{m}{r}"] = f"m{m}"
    return Discovery(tuple(nodes), master_of, {}, None)


def test_shape_is_masters_and_fewest_replicas() -> None:
    assert _found([1, 1, 1]).shape() == (3, 1)
    assert not _found([1, 1, 1]).uneven()
    assert _found([2, 1]).shape() == (2, 1)
    assert _found([2, 1]).uneven()
    assert [n.node_id for n in _found([1, 1]).masters] == ["m0", "m1"]


@pytest.mark.parametrize(
    ("settings", "any_shape", "reason"),
    [
        ({}, False, None),
        ({"masters": 3, "replicas": 1}, False, None),
        ({"node_timeout_ms": 1000}, False, None),  # bounds use the cluster's own timeout
        ({"masters": 1, "replicas": 0}, True, None),
        (
            {"masters": 1, "replicas": 0},
            False,
            "needs masters=1, replicas=0; the cluster has 3 master(s) with 1 replica(s)",
        ),
        ({"replicas": 2}, False, "needs replicas=2"),
        ({"persistence": "aof"}, True, "cannot set persistence='aof'"),
        ({"proxied": True}, False, "cannot set proxied=True"),
        ({"server_args": (("maxmemory", "1mb"),)}, False, "cannot set server_args"),
    ],
)
def test_which_cluster_marks_an_external_cluster_satisfies(
    settings: dict[str, Any], any_shape: bool, reason: str | None
) -> None:
    got = mismatch(settings, _found([1, 1, 1]), any_shape)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got and got.startswith("external cluster: ")


def test_allow_destructive_is_a_switch() -> None:
    opt = options.OPTION["allow_destructive"]
    assert opt.switch and opt.flag == "--allow-destructive"
    assert opt.to_text(True) == ["--allow-destructive"] and opt.to_text(False) == []
    got = options.from_text("run", {"allow_destructive": True, "nodes": "a:1"})
    assert got["allow_destructive"] is True and got["nodes"] == "a:1"
    assert options.from_text("pytest", {"allow_destructive": None})["allow_destructive"] is False


def test_skip_reasons_of_markers(pytester: pytest.Pytester) -> None:
    items = pytester.getitems(
        """
        import pytest

        @pytest.mark.destructive("kills nodes")
        def test_d(): pass

        @pytest.mark.whole_keyspace("counts every key of the node")
        def test_k(): pass

        def test_plain(): pass
        """
    )
    d, k, plain = items
    assert destructive_reason(d, allow=False) == (
        "external cluster: destructive (kills nodes); pass --allow-destructive to run it"
    )
    assert destructive_reason(d, allow=True) is None
    assert destructive_reason(plain, allow=False) is None
    reason = keyspace_reason(k)
    assert reason is not None and "counts every key of the node" in reason
    assert keyspace_reason(d) is None
