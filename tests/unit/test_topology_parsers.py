"""harness.topology: parsers for CLUSTER NODES / INFO / SHARDS and the snapshot types."""

from __future__ import annotations

import dataclasses

import pytest

from harness.topology import (
    NodeEntry,
    NodeView,
    ParseError,
    Shard,
    ShardNode,
    Snapshot,
    format_ranges,
    merge_ranges,
    parse_cluster_nodes,
    parse_cluster_shards,
    parse_info,
)

A = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"
B = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"
C = "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"
RA = "07c37dfeb235213a872192d90877d0cd55635b91"
RB = "6ec23923021cf3ffec47632106199cb7f496ce01"
RC = "824fe116063bc5fcf9f4ffd895bc17aee7731ac3"

# Redis 6.2: ip:port@cport, no hostname part.
NODES_62 = f"""\
{RA} 127.0.0.1:30004@31004 slave {A} 0 1426238317239 1 connected
{B} 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
{C} 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
{RB} 127.0.0.1:30005@31005 slave {B} 0 1426238316232 2 connected
{RC} 127.0.0.1:30006@31006 slave {C} 0 1426238317741 3 connected
{A} 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
"""

# Redis 7.0: ip:port@cport,hostname (hostname may be empty: trailing comma).
NODES_70 = f"""\
{A} 127.0.0.1:7000@17000,node-a.example.com myself,master - 0 1700000000000 1 connected 0-5460
{B} 127.0.0.1:7001@17001, master - 0 1700000000123 2 connected 5461-10922
{C} 127.0.0.1:7002@17002,node-c master - 0 1700000000456 3 connected 10923-16383
{RA} 127.0.0.1:7003@17003, slave {A} 0 1700000000789 1 connected
{RB} 127.0.0.1:7004@17004, slave {B} 0 1700000000999 2 connected
{RC} 127.0.0.1:7005@17005, slave {C} 0 1700000001111 3 connected
"""


def by_id(entries: list[NodeEntry]) -> dict[str, NodeEntry]:
    return {e.node_id: e for e in entries}


# -- CLUSTER NODES ----------------------------------------------------------------------


def test_parse_redis_62_cluster_nodes() -> None:
    entries = parse_cluster_nodes(NODES_62)
    assert [e.node_id for e in entries] == [RA, B, C, RB, RC, A]
    nodes = by_id(entries)
    a = nodes[A]
    assert (a.host, a.port, a.bus_port, a.hostname) == ("127.0.0.1", 30001, 31001, "")
    assert a.addr == "127.0.0.1:30001"
    assert a.flags == frozenset({"myself", "master"})
    assert a.is_master and a.is_myself and not a.is_replica
    assert a.master_id is None
    assert (a.ping_sent, a.pong_recv, a.config_epoch, a.link_state) == (0, 0, 1, "connected")
    assert a.slots == ((0, 5460),)
    assert a.slot_count == 5461
    ra = nodes[RA]
    assert ra.is_replica and not ra.is_master and not ra.is_myself
    assert ra.master_id == A
    assert ra.slots == ()
    assert ra.slot_count == 0
    assert (ra.ping_sent, ra.pong_recv) == (0, 1426238317239)
    assert sum(e.slot_count for e in entries) == 16384


def test_parse_redis_70_cluster_nodes_with_hostnames() -> None:
    nodes = by_id(parse_cluster_nodes(NODES_70))
    assert nodes[A].hostname == "node-a.example.com"
    assert nodes[A].bus_port == 17000
    assert nodes[B].hostname == ""  # "127.0.0.1:7001@17001," -> empty hostname
    assert nodes[B].addr == "127.0.0.1:7001"
    assert nodes[B].bus_port == 17001
    assert nodes[C].hostname == "node-c"
    assert nodes[RC].master_id == C
    assert nodes[RC].config_epoch == 3


def test_parse_tolerates_crlf_blank_lines_and_surrounding_space() -> None:
    text = "\r\n" + NODES_62.replace("\n", "\r\n") + "\r\n\r\n"
    assert parse_cluster_nodes(text) == parse_cluster_nodes(NODES_62)
    assert parse_cluster_nodes("") == []
    assert parse_cluster_nodes("\n\n") == []


def test_parse_address_without_bus_port_and_ipv6() -> None:
    old = parse_cluster_nodes(f"{A} 127.0.0.1:6379 myself,master - 0 0 0 connected 0-16383")[0]
    assert (old.host, old.port, old.bus_port) == ("127.0.0.1", 6379, 0)
    v6 = parse_cluster_nodes(f"{A} ::1:7000@17000 myself,master - 0 0 0 connected")[0]
    assert (v6.host, v6.port, v6.bus_port) == ("::1", 7000, 17000)
    assert v6.addr == "::1:7000"


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        ("myself,master", {"master": True, "myself": True}),
        ("slave", {"replica": True}),
        ("myself,slave", {"replica": True, "myself": True}),
        ("replica", {"replica": True}),
        ("master,fail", {"master": True, "failed": True}),
        ("master,fail?", {"master": True, "suspected": True}),
        ("slave,fail?", {"replica": True, "suspected": True}),
        ("handshake", {"handshake": True}),
        ("master,noaddr", {"master": True, "handshake": True}),
        ("noflags", {}),
    ],
)
def test_flag_properties(flags: str, expect: dict[str, bool]) -> None:
    e = parse_cluster_nodes(f"{B} 127.0.0.1:7001@17001 {flags} - 0 0 2 connected")[0]
    got = {
        "master": e.is_master,
        "replica": e.is_replica,
        "myself": e.is_myself,
        "failed": e.failed,
        "suspected": e.suspected,
        "handshake": e.in_handshake,
    }
    assert got == {k: expect.get(k, False) for k in got}


def test_noflags_and_empty_flags_are_dropped() -> None:
    e = parse_cluster_nodes(f"{B} 127.0.0.1:7001@17001 noflags - 0 0 0 connected")[0]
    assert e.flags == frozenset()


def test_fail_and_pfail_are_distinct() -> None:
    fail = parse_cluster_nodes(f"{B} 127.0.0.1:7001@17001 master,fail - 0 0 2 disconnected")[0]
    pfail = parse_cluster_nodes(f"{B} 127.0.0.1:7001@17001 master,fail? - 0 0 2 connected")[0]
    assert fail.failed and not fail.suspected
    assert pfail.suspected and not pfail.failed
    assert fail.link_state == "disconnected"


def test_handshake_and_noaddr_lines() -> None:
    text = (
        "d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0 127.0.0.1:7009@17009 handshake - "
        "1700000000000 0 0 disconnected\n"
        f"{C} :0@0 master,noaddr - 1426238317239 1426238316232 3 disconnected 10923-16383\n"
    )
    hs, noaddr = parse_cluster_nodes(text)
    assert hs.in_handshake and not hs.is_master and not hs.is_replica
    assert hs.ping_sent == 1700000000000
    assert (noaddr.host, noaddr.port, noaddr.bus_port) == ("", 0, 0)
    assert noaddr.in_handshake and noaddr.is_master
    assert noaddr.slots == ((10923, 16383),)


def test_multiple_ranges_and_single_slots() -> None:
    line = f"{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-100 200 300-400 5460 16383"
    e = parse_cluster_nodes(line)[0]
    assert e.slots == ((0, 100), (200, 200), (300, 400), (5460, 5460), (16383, 16383))
    assert e.slot_count == 101 + 1 + 101 + 1 + 1


def test_importing_and_migrating_entries() -> None:
    line = (
        f"{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 "
        f"[93-<-{C}] [1002->-{B}] [5000->-{C}]"
    )
    e = parse_cluster_nodes(line)[0]
    assert e.slots == ((0, 5460),)  # bracketed entries are not owned ranges
    assert e.importing == ((93, C),)
    assert e.migrating == ((1002, B), (5000, C))


def test_importing_only_line_without_owned_slots() -> None:
    line = f"{B} 127.0.0.1:7001@17001 myself,master - 0 0 2 connected [7-<-{A}]"
    (e,) = parse_cluster_nodes(line)
    assert e.slots == ()
    assert e.importing == ((7, A),)
    assert e.migrating == ()


@pytest.mark.parametrize(
    "line",
    [
        f"{A} 127.0.0.1:7000@17000 myself,master - 0 0 1",  # 7 fields
        f"{A} 127.0.0.1:7000@17000",
        "garbage",
        f"{A} 127.0.0.1:port@17000 master - 0 0 1 connected",  # port not a number
        f"{A} 127.0.0.1:7000@bus master - 0 0 1 connected",  # bus port not a number
        f"{A} 127.0.0.1:7000@17000 master - x 0 1 connected",  # ping not a number
        f"{A} 127.0.0.1:7000@17000 master - 0 y 1 connected",  # pong not a number
        f"{A} 127.0.0.1:7000@17000 master - 0 0 epoch connected",  # epoch not a number
        f"{A} 127.0.0.1:7000@17000 master - 0 0 1 connected 0-abc",
        f"{A} 127.0.0.1:7000@17000 master - 0 0 1 connected abc",
        f"{A} 127.0.0.1:7000@17000 master - 0 0 1 connected 1-2-3",
        f"{A} 127.0.0.1:7000@17000 master - 0 0 1 connected -5",
        f"{A}  127.0.0.1:7000@17000 master - 0 0 1 connected",  # double space shifts fields
    ],
)
def test_malformed_lines_raise_parse_error(line: str) -> None:
    with pytest.raises(ParseError):
        parse_cluster_nodes(NODES_62 + line + "\n")


def test_parse_error_names_the_line() -> None:
    with pytest.raises(ParseError, match="0-abc"):
        parse_cluster_nodes(f"{A} 127.0.0.1:7000@17000 master - 0 0 1 connected 0-abc")
    with pytest.raises(ParseError, match="expected >= 8"):
        parse_cluster_nodes("only three fields")


@pytest.mark.parametrize("item", [f"[abc->-{B}]", f"[x-<-{C}]"])
def test_malformed_migration_entry_raises_parse_error(item: str) -> None:
    with pytest.raises(ParseError):
        parse_cluster_nodes(f"{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected {item}")


# -- CLUSTER INFO ---------------------------------------------------------------------

CLUSTER_INFO = (
    "cluster_state:ok\r\n"
    "cluster_slots_assigned:16384\r\n"
    "cluster_slots_ok:16384\r\n"
    "cluster_slots_pfail:0\r\n"
    "cluster_slots_fail:0\r\n"
    "cluster_known_nodes:6\r\n"
    "cluster_size:3\r\n"
    "cluster_current_epoch:6\r\n"
    "cluster_my_epoch:2\r\n"
    "cluster_stats_messages_ping_sent:1483\r\n"
    "cluster_stats_messages_sent:3074\r\n"
    "total_cluster_links_buffer_limit_exceeded:0\r\n"
)


def test_parse_cluster_info_with_crlf() -> None:
    info = parse_info(CLUSTER_INFO)
    assert info["cluster_state"] == "ok"
    assert info["cluster_slots_assigned"] == "16384"
    assert info["cluster_known_nodes"] == "6"
    assert info["cluster_current_epoch"] == "6"
    assert info["total_cluster_links_buffer_limit_exceeded"] == "0"
    assert len(info) == 12
    assert all("\r" not in k and "\r" not in v for k, v in info.items())


def test_parse_info_sections_and_values_with_colons() -> None:
    text = (
        "# Server\r\nredis_version:7.0.15\r\nexecutable:/usr/bin/redis-server\r\n\r\n"
        "# Clients\r\nlistener0:name=tcp,bind=*,bind=-::*,port=6379\r\nnot a field\r\n"
    )
    info = parse_info(text)
    assert info == {
        "redis_version": "7.0.15",
        "executable": "/usr/bin/redis-server",
        "listener0": "name=tcp,bind=*,bind=-::*,port=6379",
    }
    assert parse_info("") == {}


# -- CLUSTER SHARDS -------------------------------------------------------------------

RESP2_SHARDS = [
    [
        "slots",
        [0, 5460],
        "nodes",
        [
            [
                "id",
                "abc",
                "port",
                7000,
                "ip",
                "127.0.0.1",
                "endpoint",
                "127.0.0.1",
                "role",
                "master",
                "replication-offset",
                72156,
                "health",
                "online",
            ],
            [
                "id",
                "def",
                "port",
                7003,
                "ip",
                "127.0.0.1",
                "endpoint",
                "127.0.0.1",
                "role",
                "replica",
                "replication-offset",
                72156,
                "health",
                "online",
            ],
        ],
    ],
    [
        "slots",
        [5461, 5470, 5472, 10922],
        "nodes",
        [
            [
                "id",
                "ghi",
                "port",
                7001,
                "ip",
                "127.0.0.1",
                "endpoint",
                "127.0.0.1",
                "hostname",
                "node-b",
                "role",
                "master",
                "replication-offset",
                100,
                "health",
                "loading",
            ]
        ],
    ],
]


def test_parse_cluster_shards_resp2_flat_lists() -> None:
    shards = parse_cluster_shards(RESP2_SHARDS)
    assert len(shards) == 2
    first, second = shards
    assert first.slots == ((0, 5460),)
    assert first.nodes == (
        ShardNode("abc", "127.0.0.1", 7000, "master", "online", 72156),
        ShardNode("def", "127.0.0.1", 7003, "replica", "online", 72156),
    )
    assert first.master == first.nodes[0]
    assert second.slots == ((5461, 5470), (5472, 10922))
    assert second.master is not None
    assert second.master.node_id == "ghi"
    assert second.master.health == "loading"


def test_parse_cluster_shards_resp3_dicts_match_resp2() -> None:
    resp3 = [
        {
            "slots": [0, 5460],
            "nodes": [
                {
                    "id": "abc",
                    "port": 7000,
                    "ip": "127.0.0.1",
                    "endpoint": "127.0.0.1",
                    "role": "master",
                    "replication-offset": 72156,
                    "health": "online",
                },
                {
                    "id": "def",
                    "port": 7003,
                    "ip": "127.0.0.1",
                    "endpoint": "127.0.0.1",
                    "role": "replica",
                    "replication-offset": 72156,
                    "health": "online",
                },
            ],
        }
    ]
    assert parse_cluster_shards(resp3) == parse_cluster_shards(RESP2_SHARDS[:1])


def test_parse_cluster_shards_bytes_replies() -> None:
    raw = [
        [
            b"slots",
            [10923, 16383],
            b"nodes",
            [
                [
                    b"id",
                    b"xyz",
                    b"tls-port",
                    7443,
                    b"ip",
                    b"10.0.0.3",
                    b"role",
                    b"primary",
                    b"replication-offset",
                    5,
                    b"health",
                    b"online",
                ]
            ],
        ]
    ]
    (shard,) = parse_cluster_shards(raw)
    assert shard.slots == ((10923, 16383),)
    # no endpoint: falls back to ip; no port: falls back to tls-port; "primary" is a master
    assert shard.nodes == (ShardNode("xyz", "10.0.0.3", 7443, "primary", "online", 5),)
    assert shard.master == shard.nodes[0]


def test_shard_without_slots_or_master() -> None:
    (shard,) = parse_cluster_shards(
        [{"slots": [], "nodes": [{"id": "r", "port": 1, "role": "replica", "health": "fail"}]}]
    )
    assert shard.slots == ()
    assert shard.master is None
    assert shard.nodes[0].endpoint == ""
    assert shard.nodes[0].replication_offset == 0
    assert parse_cluster_shards([]) == []


@pytest.mark.parametrize(
    "reply",
    [
        [["slots", [0, 5460], "nodes"]],  # odd-length map
        [["slots", [0, 5460, 6000], "nodes", []]],  # odd number of slot bounds
        ["not a map"],
        [42],
        [{"slots": [0, 1], "nodes": [["id", "abc", "port"]]}],  # odd-length node map
    ],
)
def test_parse_cluster_shards_malformed(reply: list[object]) -> None:
    with pytest.raises(ParseError):
        parse_cluster_shards(reply)


# -- ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "ranges"),
    [
        ([], []),
        ([5], [(5, 5)]),
        ([3, 1, 2], [(1, 3)]),
        ([1, 2, 2, 3, 3], [(1, 3)]),
        ([10, 5, 4, 3, 12, 11, 0], [(0, 0), (3, 5), (10, 12)]),
        (range(16384), [(0, 16383)]),
        ([0, 16383], [(0, 0), (16383, 16383)]),
    ],
)
def test_merge_ranges(slots: list[int], ranges: list[tuple[int, int]]) -> None:
    assert merge_ranges(slots) == ranges


def test_format_ranges() -> None:
    assert format_ranges([]) == ""
    assert format_ranges([(0, 5460)]) == "0-5460"
    assert format_ranges([(7, 7)]) == "7"
    assert format_ranges([(0, 1), (3, 3), (5, 9)]) == "0-1,3,5-9"


def test_format_ranges_limit() -> None:
    ranges = [(i * 10, i * 10 + 1) for i in range(9)]
    assert format_ranges(ranges) == "0-1,10-11,20-21,30-31,40-41,50-51 (+3 more)"
    assert format_ranges(ranges, limit=2) == "0-1,10-11 (+7 more)"
    assert format_ranges(ranges[:6]) == "0-1,10-11,20-21,30-31,40-41,50-51"


def test_merge_then_format_round_trip() -> None:
    assert format_ranges(merge_ranges([1, 2, 3, 7, 9, 10])) == "1-3,7,9-10"


# -- NodeView / Snapshot --------------------------------------------------------------


def view_62() -> NodeView:
    return NodeView(
        observer="127.0.0.1:30001",
        nodes=tuple(parse_cluster_nodes(NODES_62)),
        info=parse_info(CLUSTER_INFO),
    )


def test_node_view_myself_and_by_id() -> None:
    v = view_62()
    assert v.myself is not None
    assert v.myself.node_id == A
    assert set(v.by_id()) == {A, B, C, RA, RB, RC}
    assert NodeView("x:1", ()).myself is None


def test_slot_owners() -> None:
    owners = view_62().slot_owners()
    assert len(owners) == 16384
    assert owners[0] == owners[5460] == A
    assert owners[5461] == owners[10922] == B
    assert owners[10923] == owners[16383] == C
    assert None not in owners


def test_slot_owners_unassigned_and_out_of_range_ranges() -> None:
    a = parse_cluster_nodes(f"{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 10-20")[0]
    bad = dataclasses.replace(a, node_id=B, slots=((16380, 16400), (-5, 1)))
    owners = NodeView("127.0.0.1:7000", (a, bad)).slot_owners()
    assert owners[9] is None
    assert owners[10:21] == [A] * 11
    assert owners[21] is None
    assert owners[0] == owners[1] == B  # clamped, no IndexError or negative indexing
    assert owners[16380:] == [B] * 4
    assert owners[16379] is None


def test_slot_map_is_sorted_and_comparable() -> None:
    v = view_62()
    assert v.slot_map() == ((0, 5460, A), (5461, 10922, B), (10923, 16383, C))
    shuffled = NodeView("other:1", tuple(reversed(v.nodes)))
    assert shuffled.slot_map() == v.slot_map()


def test_snapshot_view_lookup() -> None:
    v = view_62()
    snap = Snapshot(views=(v,), unreachable={"127.0.0.1:30009": "Connection refused"})
    assert snap.view("127.0.0.1:30001") is v
    assert snap.view("127.0.0.1:30002") is None


def test_snapshot_describe() -> None:
    v = view_62()
    failed = dataclasses.replace(v.by_id()[C], flags=frozenset({"master", "fail"}))
    nodes = tuple(failed if n.node_id == C else n for n in v.nodes)
    snap = Snapshot(
        views=(dataclasses.replace(v, nodes=nodes),),
        unreachable={"127.0.0.1:30003": "Connection refused"},
    )
    text = snap.describe()
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1:30001 state=ok epoch=6"
    assert f"  {A[:8]} 127.0.0.1:30001 master epoch=1 slots=0-5460" in lines
    assert f"  {RA[:8]} 127.0.0.1:30004 replica of {A[:8]} epoch=1 slots=-" in lines
    assert f"  {C[:8]} 127.0.0.1:30003 master epoch=3 slots=10923-16383 [fail]" in lines
    assert lines[-1] == "127.0.0.1:30003 unreachable: Connection refused"
    # nodes are grouped by shard (ordered by master id): each master, then its replica
    order = [line.split()[0] for line in lines[1:-1]]
    assert order == [C[:8], RC[:8], B[:8], RB[:8], A[:8], RA[:8]]


def test_snapshot_describe_without_info() -> None:
    snap = Snapshot(views=(NodeView("127.0.0.1:1", ()),))
    assert snap.describe() == "127.0.0.1:1 state=? epoch=?"


def test_snapshot_describe_nothing_reachable() -> None:
    snap = Snapshot(views=(), unreachable={"h:1": "timeout", "h:2": "refused"})
    assert snap.describe() == "no node reachable: h:1: timeout; h:2: refused"


def test_shard_master_picks_master_role() -> None:
    r = ShardNode("r", "h", 1, "replica", "online", 0)
    m = ShardNode("m", "h", 2, "master", "online", 0)
    assert Shard(((0, 1),), (r, m)).master == m
    assert Shard(((0, 1),), (r,)).master is None
