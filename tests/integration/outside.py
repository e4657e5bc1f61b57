"""Clusters the tests start outside the harness, as an operator would (``redis-cli
--cluster create``): when such a cluster is ready to be pointed at.

A plain module, imported like ``sandbox`` (pytest's "prepend" mode puts this directory on
``sys.path``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.checkers import healthy
from harness.topology import NodeView, Snapshot, parse_cluster_nodes, parse_info


def settled(call: Callable[..., Any], ports: Sequence[int]) -> tuple[bool, str]:
    """Healthy as the harness's checkers judge it (gossip settled: all nodes agree on the
    roles redis-cli set) and every replica synced, as an operator would wait.
    ``call(port, *command)`` is the operator's own way into a node."""
    views, seen = [], []
    for p in ports:
        entries = parse_cluster_nodes(call(p, "CLUSTER", "NODES"))
        info = parse_info(call(p, "CLUSTER", "INFO"))
        views.append(NodeView(f"127.0.0.1:{p}", tuple(entries), info))
        rep = parse_info(call(p, "INFO", "replication"))
        if rep.get("role") != "master" and rep.get("master_link_status") != "up":
            seen.append(f"{p}: replica link {rep.get('master_link_status')}")
    verdict = healthy(Snapshot(tuple(views)))
    return verdict.ok and not seen, "; ".join([*seen, *verdict.problems])
