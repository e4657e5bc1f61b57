"""The server's own cluster tool (``redis-cli --cluster`` / ``valkey-cli``) on real
servers: a cluster it creates, a master it adds and fills (``reshard``) and balances
(``rebalance --cluster-use-empty-masters``), nodes it removes after they were drained,
and its ``check`` on really broken states (a slot nobody serves, an open slot). With a
password, on the docker backend, and where no tool of the server's version exists."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness import Cluster, ClusterSpec, checkers
from harness import impl as impls
from harness.backends import Node
from harness.clitool import CliError, ClusterCli, cli_unavailable, second_opinion
from harness.clitool.check import NOT_COVERED
from harness.crc16 import key_slot
from harness.errors import HarnessError, NotSupportedError
from harness.impl import Implementation

KEYS = 600


def tool_for(c: Cluster) -> ClusterCli:
    try:
        return ClusterCli(c)
    except NotSupportedError as exc:
        pytest.skip(str(exc))


def write_keys(c: Cluster, n: int = KEYS) -> dict[str, str]:
    client = c.client()
    keys = {f"cli:{i}": f"v{i}" for i in range(n)}
    for k, v in keys.items():
        client.set(k, v)
    return keys


def unreadable(c: Cluster, keys: dict[str, str]) -> list[str]:
    """Keys that do not read back with their value (through MOVED, from a new client)."""
    client = c.client()
    return [k for k, v in keys.items() if client.get(k) != v]


def slots_of(c: Cluster, node: Node) -> int:
    me = c.view(node, with_shards=False).myself
    return me.slot_count if me is not None and me.is_master else 0


def assert_tool_and_harness_agree(c: Cluster, tool: ClusterCli) -> None:
    verdict = tool.check()
    assert verdict.ok, f"{verdict.describe()}\n{verdict.messages}"
    mine = c.check()
    assert mine.ok, str(mine)
    seen = {n.node_id: n for n in verdict.nodes}
    assert set(seen) == {n.node_id for n in c.nodes}, "the tool saw other nodes than the harness"
    for n in c.nodes:
        assert sum(hi - lo + 1 for lo, hi in seen[n.node_id or ""].slots) == slots_of(c, n)


def drain(c: Cluster, tool: ClusterCli, node: Node, to: Node) -> None:
    """Reshard all of ``node``'s slots to ``to``, as the tutorial removes a master.
    redis-cli 6.2 may fail on the last slot (redis/redis#9223; 7.0 tolerates it) although the
    slot moved: that failure is recognised, and the slot must then have moved."""
    try:
        tool.reshard(node, to, slots_of(c, node))
    except CliError as exc:
        if exc.known_issue is None or "9223" not in exc.known_issue:
            raise
        assert c.impl.version < (7, 0, 0), f"redis-cli 7.0 tolerates this: {exc}"
    c.wait_ready()
    assert slots_of(c, node) == 0


def test_the_tools_workflow_from_create_to_del_node(any_impl: Implementation) -> None:
    """create 3x1, add a master and reshard 100 slots with keys to it, rebalance onto
    an empty master, drain both and del-node them: check OK and every key readable at
    each step, and the harness's own checkers agree with the tool."""
    spec = ClusterSpec(masters=3, replicas=1, formation="redis-cli")
    with Cluster.start(any_impl, spec) as c:
        tool = tool_for(c)
        assert tool.program.version == any_impl.version
        assert Path(tool.program.path).parent == Path(any_impl.binary).parent  # same package
        # the roles are the tool's choice, read back: nothing assumed from node order
        assert len(c.initial_masters) == 3 and len(c.initial_replicas) == 3
        assert c.first_slot(c.initial_masters[0]) == 0
        for r in c.initial_replicas:
            me = c.view(r, with_shards=False).myself
            assert me is not None and me.master_id == c.initial_master_of(r).node_id
        assert_tool_and_harness_agree(c, tool)
        keys = write_keys(c)

        added = c.add_nodes(1)[0]
        tool.add_node(added)
        c.wait_ready()
        source = c.initial_masters[0]
        moved = [k for k in keys if key_slot(k) <= 99]  # reshard takes the lowest slots first
        tool.reshard(source, added, 100)
        c.wait_ready()
        assert slots_of(c, added) == 100
        assert int(added.call("DBSIZE")) == len(moved) > 0  # type: ignore[call-overload]
        assert_tool_and_harness_agree(c, tool)
        assert unreadable(c, keys) == []

        empty = c.add_nodes(1)[0]
        tool.add_node(empty)
        c.wait_ready()
        # weights keep the moves small: ~108 slots each for the two small masters
        tool.rebalance(use_empty_masters=True, weights={added: 0.02, empty: 0.02})
        c.wait_ready()
        assert slots_of(c, empty) > 0, "--cluster-use-empty-masters gave it nothing"
        assert_tool_and_harness_agree(c, tool)
        assert unreadable(c, keys) == []

        for node, to in ((added, c.initial_masters[0]), (empty, c.initial_masters[1])):
            drain(c, tool, node, to)
        for node in (added, empty):
            tool.del_node(node)
            assert node not in c.nodes and node.state == "stopped"
        c.wait_ready()
        assert_tool_and_harness_agree(c, tool)
        assert unreadable(c, keys) == []
        steps = [e.action for e in c.events if e.action.endswith(" done")]
        name = tool.program.name
        for cmd in ("create", "add-node", "reshard", "rebalance", "del-node", "check"):
            assert f"{name} {cmd} done" in steps


def test_check_reports_a_slot_nobody_serves(any_impl: Implementation) -> None:
    """After ``CLUSTER DELSLOTS`` on its owner a slot has no owner: the tool says
    ``[ERR] Not all 16384 slots are covered by nodes.``, as the harness's checkers do."""
    with Cluster.start(any_impl, ClusterSpec(masters=3, replicas=0)) as c:
        tool = tool_for(c)
        owner = c.initial_masters[1]
        slot = c.first_slot(owner)
        owner.call("CLUSTER", "DELSLOTS", slot)
        verdict = tool.check()
        assert verdict.covered is False and NOT_COVERED in verdict.messages
        assert not verdict.ok
        assert not checkers.healthy(c.snapshot()).ok  # the harness sees it too
        again = second_opinion(c)
        assert again is not None and again.covered is False


def test_check_reports_an_open_slot_and_fix_closes_it(any_impl: Implementation) -> None:
    """``SETSLOT MIGRATING`` on the owner (and ``IMPORTING`` on the target) leaves the
    slot open: the tool names the slot and both nodes; ``fix`` closes it."""
    with Cluster.start(any_impl, ClusterSpec(masters=3, replicas=0)) as c:
        tool = tool_for(c)
        owner, target = c.initial_masters[0], c.initial_masters[2]
        slot = c.first_slot(owner) + 7
        owner.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        verdict = tool.check()
        assert verdict.open_slots == {slot}
        assert (owner.public_addr, (slot,)) in verdict.migrating
        assert verdict.covered is True and verdict.agree is True and not verdict.ok
        target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", owner.node_id)
        verdict = tool.check()
        assert (target.public_addr, (slot,)) in verdict.importing
        assert verdict.open_slots == {slot}
        tool.fix()
        c.wait_ready()
        verdict = tool.check()
        assert verdict.ok, verdict.describe()


def test_with_a_password_nothing_shows_it() -> None:
    """On a password cluster the tool authenticates through ``REDISCLI_AUTH``: no
    ``-a`` warning in its output, and the password in no argument, output or event."""
    impl = impls.available("redis-7.0") or impls.available("valkey-8.0")
    if impl is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    password = "cli-s3cret-pw"
    spec = ClusterSpec(masters=3, replicas=1, formation="redis-cli", password=password)
    with Cluster.start(impl, spec) as c:
        tool = tool_for(c)
        keys = write_keys(c, 200)
        added = c.add_nodes(1)[0]
        runs = [tool.add_node(added)]
        c.wait_ready()
        runs.append(tool.reshard(c.initial_masters[2], added, 10))
        c.wait_ready()
        verdict = tool.check()
        assert verdict.ok, verdict.describe()
        assert unreadable(c, keys) == []
        with pytest.raises(redis.exceptions.AuthenticationError):  # it does need one
            redis.Redis(host=added.host, port=added.port).ping()
        for run in runs:
            assert password not in " ".join(run.args) and password not in run.output
            assert "Using a password" not in run.output
        assert all(password not in f"{e.action} {e.node} {e.detail}" for e in c.events)
        assert all(password not in text for text in c.logs().values())


def test_where_the_servers_version_has_no_tool(tmp_path: Path) -> None:
    """A server copied away from its tool (and no tool of its version on PATH) has no
    second opinion, says why, and cannot be formed by the tool: a NotSupportedError,
    nothing left running."""
    impl62 = impls.available("redis-6.2")
    if impl62 is None:
        pytest.skip("needs redis-6.2 (its version differs from the redis-cli on PATH)")
    copy = tmp_path / "redis-server"
    shutil.copy2(impl62.binary, copy)
    impl = impls.resolve("redis-6.2", str(copy))
    with Cluster.start(impl, ClusterSpec(masters=1, replicas=0)) as c:
        reason = cli_unavailable(c)
        assert reason is not None and "redis-cli of redis 6.2.14" in reason
        assert second_opinion(c) is None
    with pytest.raises(NotSupportedError, match=r"no redis-cli of redis 6\.2\.14"):
        Cluster.start(impl, ClusterSpec(masters=3, replicas=0, formation="redis-cli"))


def test_a_failing_command_raises_with_the_tools_words(any_impl: Implementation) -> None:
    """del-node of a master that still has slots: the tool refuses, the error carries
    its own line, and the timeline shows the attempt with its exit status."""
    with Cluster.start(any_impl, ClusterSpec(masters=3, replicas=0)) as c:
        tool = tool_for(c)
        with pytest.raises(HarnessError, match="is not empty") as err:
            tool.del_node(c.initial_masters[2])
        assert err.value.result is not None and err.value.result.code != 0  # type: ignore[attr-defined]
        assert c.initial_masters[2] in c.nodes
        done = [e for e in c.events if e.action.endswith("del-node done")]
        assert done and done[-1].detail.startswith("exit ")


@pytest.fixture
def docker_impl() -> Iterator[Implementation]:
    try:
        from harness import images

        images.docker_client().close()
    except (ImportError, HarnessError) as exc:
        pytest.skip(f"needs a reachable Docker: {exc}")
    impl = impls.available("redis-7.0") or impls.available("valkey-8.0")
    if impl is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    yield impl


def test_on_docker_the_tool_in_the_image(docker_impl: Implementation) -> None:
    """On the docker backend the tool runs from the nodes' image (the harness packs it
    beside the server) in a one-off container on the cluster network."""
    spec = ClusterSpec(masters=3, replicas=1, formation="redis-cli")
    with Cluster.start(docker_impl, spec, backend="docker") as c:
        tool = tool_for(c)
        assert tool.program.image is not None and tool.program.path.startswith("/usr/local/bin/")
        assert tool.program.version == docker_impl.version
        keys = write_keys(c, 300)
        added = c.add_nodes(1)[0]
        tool.add_node(added)
        c.wait_ready()
        tool.reshard(c.initial_masters[0], added, 100)
        c.wait_ready()
        assert slots_of(c, added) == 100
        assert_tool_and_harness_agree(c, tool)
        assert unreadable(c, keys) == []
