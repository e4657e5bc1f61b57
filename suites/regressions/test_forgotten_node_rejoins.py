"""Regression: a node forgotten on every other node sends them ``MEET`` and is back in
the cluster within seconds, inside the ban ``CLUSTER FORGET`` sets.

valkey-io/valkey#2788 (open): since valkey-io/valkey#1307 (Valkey 8.1) a node with an
outbound link to a peer but no inbound link from it re-sends ``MEET`` every handshake
timeout. A forgotten node that keeps running is exactly in that state (the others
dropped it and their links to it), and a ``MEET`` from an unknown sender is accepted
whatever the ban says: the fix under review, valkey-io/valkey#4090, names both ("a
forgotten node could even get back in during the ban window"; "On 8.0 the forgotten
node stayed out"). Redis has no #1307. Observable: a node that forgot it lists it
again while the 60 s ban lasts, and the forgotten node's log line ``Sending MEET packet
to node <id> () because there is no inbound link for it``.

Found by the conformance test
``test_membership.py::test_a_forgotten_node_is_not_relearned_from_gossip_while_banned``
on Valkey 8.1.8 (3 of 3 runs, re-listed 2.1 s after the forget): this scenario keeps the
recipe and says which versions have it.
"""

from __future__ import annotations

import time

import pytest

from harness import Cluster
from harness.backends import Node
from harness.errors import NotReadyError
from harness.ops import BLACKLIST_S, add_master, forget_node
from harness.regressions import Bug, Regression
from harness.testing import wait_for

BUG = Bug(
    name="forgotten-node-rejoins-by-meet",
    reference="valkey-io/valkey#2788",
    title="a node forgotten everywhere re-meets the others and is listed again inside "
    "the CLUSTER FORGET ban",
    affected="Valkey 8.1 (valkey-io/valkey#1307)",
    fixed="not yet (valkey-io/valkey#4090 under review)",
    observable="CLUSTER NODES of the nodes that forgot it, within the 60 s ban",
)
MEET_LINE = r"Sending MEET packet to node \S+ .*because there is no inbound link"


def _listing(others: list[Node], gone: Node) -> tuple[bool, list[str]]:
    """Which of ``others`` list ``gone`` (by id, or by address while a handshake runs)."""
    back = []
    for n in others:
        table = str(n.call("CLUSTER", "NODES"))
        if (gone.node_id or "?") in table or f" {gone.public_addr}@" in table:
            back.append(n.addr)
    return bool(back), back


@pytest.mark.regression(BUG)
@pytest.mark.cluster(masters=3, replicas=0)
def test_forgotten_node_rejoins_by_meet(cluster: Cluster, regression: Regression) -> None:
    """MUST: a node forgotten on every other node stays out while the ban lasts, even if
    it keeps running (the ``CLUSTER FORGET`` page; Redis Cluster specification, "Removing
    nodes from a cluster")."""
    with regression.setup("add an empty master"):
        gone = add_master(cluster)
    others = [n for n in cluster.live_nodes() if n is not gone]
    with regression.setup(f"forget {gone.addr} on every other node"):
        forget_node(cluster, gone)
    t0 = time.monotonic()
    # every node pings the others at least every half node timeout, and a MEET is re-sent
    # every handshake timeout (the node timeout): three of them, well inside the ban
    window = min(3 * cluster.spec.node_timeout_ms / 1000 + 2, BLACKLIST_S - 10)
    try:
        back = wait_for(
            lambda: _listing(others, gone), window, f"a node listing the forgotten {gone.addr}"
        )
    except NotReadyError:
        regression.not_reproduced(
            f"no node listed {gone.addr} in the {window:.0f} s after it was forgotten "
            f"everywhere (ban {BLACKLIST_S:.0f} s), while it kept running"
        )
        return
    after = time.monotonic() - t0
    for line in regression.log_lines(cluster, MEET_LINE)[:4]:
        regression.evidence(line)
    regression.reproduced(
        f"{', '.join(back)} listed the forgotten {gone.addr} again {after:.1f} s after it "
        f"was forgotten everywhere, inside the {BLACKLIST_S:.0f} s ban",
        relisted_after_s=round(after, 2),
    )
