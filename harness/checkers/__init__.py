"""Verdicts: pure functions of what was observed, never of a live server.

- :mod:`~harness.checkers.topology`: a snapshot of ``CLUSTER NODES/INFO/SHARDS``
  replies in, a :class:`~harness.checkers.topology.Verdict` out (slot coverage,
  agreement, epochs, replicas, shards);
- history checkers (Jepsen-style, O(n log n), a failed run can be re-checked from its
  JSONL history): :mod:`~harness.checkers.sets`, :mod:`~harness.checkers.counter`,
  :mod:`~harness.checkers.register`, :mod:`~harness.checkers.availability`, with fault
  windows from :mod:`~harness.checkers.windows`;
- the one interface of history checkers (:mod:`~harness.checkers.base`: valid / invalid
  / unknown with figures) and the standard ones behind it
  (:mod:`~harness.checkers.standard`).

``info`` (unknown) outcomes are never treated as failures. Linearizability is out of
scope on purpose: it does not scale to long chaos runs.
"""

from harness.checkers.availability import (
    Outage,
    Phases,
    Unavailable,
    availability,
    failover_phases,
)
from harness.checkers.base import (
    Checker,
    Compose,
    Result,
    Validity,
    check_all,
    check_safe,
    merge_valid,
)
from harness.checkers.counter import CounterResult, CounterViolation, check_counter
from harness.checkers.register import RegisterResult, StaleRead, check_register
from harness.checkers.sets import LossSummary, LostWrite, SetResult, check_set
from harness.checkers.standard import (
    REPLICATION_GRACE_MS,
    AvailabilityChecker,
    CounterChecker,
    FailoverChecker,
    RegisterChecker,
    SetChecker,
    summarise,
)
from harness.checkers.topology import (
    Verdict,
    agreement,
    healthy,
    info_consistent,
    replicas_follow_live_masters,
    shards_match_nodes,
    slot_coverage,
    state_ok,
    unique_epochs,
)
from harness.checkers.windows import (
    LOSS_CLASSES,
    OPEN_END,
    WRITE_KINDS,
    LossClass,
    Window,
    fault_windows,
)

__all__ = [
    "LOSS_CLASSES",
    "OPEN_END",
    "REPLICATION_GRACE_MS",
    "WRITE_KINDS",
    "AvailabilityChecker",
    "Checker",
    "Compose",
    "CounterChecker",
    "CounterResult",
    "CounterViolation",
    "FailoverChecker",
    "LossClass",
    "LossSummary",
    "LostWrite",
    "Outage",
    "Phases",
    "RegisterChecker",
    "RegisterResult",
    "Result",
    "SetChecker",
    "SetResult",
    "StaleRead",
    "Unavailable",
    "Validity",
    "Verdict",
    "Window",
    "agreement",
    "availability",
    "check_all",
    "check_counter",
    "check_register",
    "check_safe",
    "check_set",
    "failover_phases",
    "fault_windows",
    "healthy",
    "info_consistent",
    "merge_valid",
    "replicas_follow_live_masters",
    "shards_match_nodes",
    "slot_coverage",
    "state_ok",
    "summarise",
    "unique_epochs",
]
