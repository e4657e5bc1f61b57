"""Chaos and conformance test harness for Redis Cluster implementations.

Library entry points, in Jepsen's split: where nodes run (:mod:`harness.backends`,
through :class:`Cluster` / :class:`ClusterSpec`), what breaks them (:mod:`harness.faults`),
what clients did (:mod:`harness.workload`, :mod:`harness.history`: one timeline), the
verdicts (:mod:`harness.checkers`), a test as one value (:class:`Scenario`), and the
report (:mod:`harness.report`). The pytest plugin (:mod:`harness.plugin`) and the CLI
(:mod:`harness.cli`) are thin layers over these.
"""

from harness.checkers import Verdict
from harness.cluster import Cluster
from harness.crc16 import key_for_slot, key_slot
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.scenario import Scenario
from harness.spec import ClusterSpec
from harness.wait import eventually, wait_for

__all__ = [
    "Cluster",
    "ClusterSpec",
    "HarnessError",
    "Implementation",
    "Scenario",
    "Verdict",
    "eventually",
    "key_for_slot",
    "key_slot",
    "wait_for",
]
