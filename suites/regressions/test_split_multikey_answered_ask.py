"""Regression: a migrating source answers ASK, not TRYAGAIN, to a multi-key command on
keys split between it and the target.

redis/redis#9526 (fixed in Redis 7.0.0): the "TRYAGAIN error" page and the specification
("Multi-keys operations") say a source that holds only some keys of a multi-key command
answers ``-TRYAGAIN``; before 7.0 ``getNodeByQuery`` checked for missing keys only after
deciding to redirect, so the source sent ``-ASK`` and the target, after ``ASKING``,
answered ``-TRYAGAIN`` a hop later. Observable: the source's exact reply to ``MGET`` of
one key it holds and one already moved. This is the README's worked example of a
scenario written from a bug report.
"""

from __future__ import annotations

import pytest

from harness import Cluster
from harness.regressions import Bug, Regression
from harness.testing import ErrorReply

from ..conformance._migration import migration, reply, slot_keys

BUG = Bug(
    name="split-multikey-answered-ask",
    reference="redis/redis#9526",
    title="a migrating source holding only some keys of a multi-key command answers ASK "
    "instead of TRYAGAIN",
    affected="Redis before 7.0",
    fixed="Redis 7.0.0",
    observable="the source's reply to MGET of keys split with the target",
)


@pytest.mark.regression(BUG)
@pytest.mark.cluster(masters=2, replicas=0)
def test_split_multikey_answered_ask(cluster: Cluster, regression: Regression) -> None:
    """SHOULD: ``MGET a b`` on a source that has moved ``a`` but holds ``b`` answers
    ``-TRYAGAIN`` ("TRYAGAIN error" page; specification, "Multi-keys operations")."""
    source, target = cluster.initial_masters
    slot = cluster.first_slot(source)
    a, b = slot_keys(slot, "ab")
    with regression.setup(f"write {a} and {b} on {source.addr}"):
        source.call("MSET", a, "1", b, "2")
    with migration(cluster, slot, source, target) as m:  # rolled back on the way out
        with regression.setup(f"move {a} to {target.addr}, slot {slot} migrating"):
            m.move(a)
        got = reply(source, "MGET", a, b)
    if isinstance(got, ErrorReply) and got.code == "ASK":
        regression.reproduced(f"{source.addr} answered MGET {a} {b} with {got.text!r}")
    elif isinstance(got, ErrorReply) and got.code == "TRYAGAIN":
        regression.not_reproduced(f"{source.addr} answered {got.text!r}")
    else:
        regression.inconclusive(f"{source.addr} answered {got!r}: neither ASK nor TRYAGAIN")
