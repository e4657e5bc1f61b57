"""Chaos and conformance test harness for Redis Cluster implementations.

Library entry points: :class:`Cluster` / :class:`ClusterSpec` to run clusters,
:mod:`harness.checkers` to judge topology snapshots, :mod:`harness.impl` to describe the
server under test. The pytest plugin (:mod:`harness.plugin`) is a thin layer over these.
"""

from harness.checkers import Verdict
from harness.cluster import Cluster
from harness.crc16 import key_for_slot, key_slot
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.spec import ClusterSpec
from harness.wait import eventually, wait_for

__all__ = [
    "Cluster",
    "ClusterSpec",
    "HarnessError",
    "Implementation",
    "Verdict",
    "eventually",
    "key_for_slot",
    "key_slot",
    "wait_for",
]
