"""What a test leaves for its page besides ``history.jsonl``: the clusters' timeline,
their shape (which node served which slots) and every node's log.

Written at teardown while the nodes still exist, for passed tests too and on
pytest-xdist workers, so the controller builds the page from files alone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from harness.errors import HarnessError
from harness.spec import slot_ranges

if TYPE_CHECKING:
    from harness.cluster import Cluster

TIMELINE = "timeline.jsonl"
CLUSTERS = "clusters.json"
LOGS = "logs"
#: a whole log is kept up to this size (a server log of one test is far smaller)
LOG_BYTES = 10_000_000


def persist(folder: Path, clusters: Sequence[Cluster], since_ns: int = 0) -> None:
    """Write the events of ``clusters`` seen since ``since_ns`` (a shared cluster has an
    older past), their shape and their nodes' logs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"cluster": ci, **e.to_json()}, separators=(",", ":"))
        for ci, c in enumerate(clusters)
        for e in c.events
        if e.t_ns >= since_ns
    ]
    (folder / TIMELINE).write_text("".join(line + "\n" for line in lines))
    shapes = [shape(ci, c) for ci, c in enumerate(clusters)]
    (folder / CLUSTERS).write_text(json.dumps(shapes, indent=1) + "\n")
    for ci, c in enumerate(clusters):
        if not c.backend.owns_cluster:  # someone else's servers keep their own logs
            continue
        (folder / LOGS).mkdir(exist_ok=True)
        for n in [*c.nodes, *c.retired]:
            (folder / LOGS / f"cluster{ci}-{n.name}-{n.port}.log").write_text(n.log_text(LOG_BYTES))


def shape(index: int, c: Cluster) -> dict[str, Any]:
    """The shards as formed (slot range, master, replicas) and the map at the end."""
    masters = c.initial_masters
    shards = [
        {
            "name": f"shard{i}",
            "slots": [lo, hi],
            "master": m.addr,
            "replicas": [r.addr for r in c.initial_replicas if c.initial_master_of(r) is m],
        }
        for i, (m, (lo, hi)) in enumerate(zip(masters, slot_ranges(len(masters)), strict=True))
    ]
    return {
        "index": index,
        "describe": c.describe(),
        "node_timeout_ms": c.spec.node_timeout_ms,
        "owned": c.backend.owns_cluster,
        "nodes": [{"name": n.name, "addr": n.addr, "state": n.state} for n in c.nodes],
        "shards": shards,
        "final": final_map(c),
    }


def final_map(c: Cluster) -> list[dict[str, Any]]:
    """Masters and their slots as the first live node sees them at the end (empty when
    none answers: the page then shows the shards as formed only)."""
    with contextlib.suppress(redis.exceptions.RedisError, OSError, HarnessError, IndexError):
        view = c.view(c.live_nodes()[0], with_shards=False)
        return [
            {"addr": e.addr, "slots": [list(r) for r in e.slots]}
            for e in view.nodes
            if "master" in e.flags and e.slots
        ]
    return []
