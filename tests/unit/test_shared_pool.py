"""The pure parts of shared clusters: settings keys, xdist groups, layouts and what a
test changed in one, and the test id without the group suffix."""

from __future__ import annotations

from harness.plugin.shared import GROUP_PREFIX, changes, group_of, layout, settings_key
from harness.plugin.workers import plain_nodeid
from harness.topology import NodeView, Snapshot, parse_cluster_nodes

M1 = "a" * 40
M2 = "b" * 40
R1 = "c" * 40

NODES = f"""{M1} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8191
{M2} 127.0.0.1:7001@17001 master - 0 0 2 connected 8192-16383
{R1} 127.0.0.1:7002@17002 slave {M1} 0 0 1 connected
"""

FAILED_OVER = f"""{M1} 127.0.0.1:7000@17000 myself,slave {R1} 0 0 3 connected
{M2} 127.0.0.1:7001@17001 master - 0 0 2 connected 8192-16383
{R1} 127.0.0.1:7002@17002 master - 0 0 3 connected 0-8191
"""


def _snap(text: str) -> Snapshot:
    return Snapshot((NodeView("127.0.0.1:7000", tuple(parse_cluster_nodes(text))),))


def test_the_same_settings_in_any_order_are_one_key_and_one_group() -> None:
    a = {"masters": 3, "replicas": 1, "server_args": (("maxmemory", "1mb"),)}
    b = {"server_args": (("maxmemory", "1mb"),), "replicas": 1, "masters": 3}
    assert settings_key(a) == settings_key(b)
    assert group_of(a) == group_of(b) and group_of(a).startswith(GROUP_PREFIX)
    assert group_of(a) != group_of({**a, "replicas": 2})
    assert settings_key({"server_args": {"x": "1"}}) == settings_key({"server_args": {"x": "1"}})


def test_layout_names_masters_slots_and_replicas() -> None:
    got = layout(_snap(NODES))
    assert got == {
        M1: ("master", ((0, 8191),)),
        M2: ("master", ((8192, 16383),)),
        R1: ("replica", M1),
    }
    assert layout(Snapshot(())) == {}


def test_an_unchanged_layout_has_no_changes() -> None:
    assert changes(layout(_snap(NODES)), layout(_snap(NODES))) == []


def test_a_failover_is_a_change_of_two_nodes() -> None:
    diff = changes(layout(_snap(NODES)), layout(_snap(FAILED_OVER)))
    assert diff == [
        "aaaaaaaa: master of 1 slot range(s) -> replica of cccccccc",
        "cccccccc: replica of aaaaaaaa -> master of 1 slot range(s)",
    ]


def test_a_node_gone_from_the_map_is_a_change() -> None:
    before = layout(_snap(NODES))
    after = {k: v for k, v in before.items() if k != R1}
    assert changes(before, after) == ["cccccccc: replica of aaaaaaaa -> absent"]


def test_the_group_suffix_is_removed_from_test_ids_only_when_it_is_ours() -> None:
    assert plain_nodeid(f"t.py::test_x[0]@{GROUP_PREFIX}12ab") == "t.py::test_x[0]"
    assert plain_nodeid("t.py::test_x[user@host]") == "t.py::test_x[user@host]"
    assert plain_nodeid("t.py::test_x@mygroup") == "t.py::test_x@mygroup"
