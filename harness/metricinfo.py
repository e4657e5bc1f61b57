"""What the suites' metrics mean, declared once: which are worse when higher, which are
settings rather than measurements, and which a person looks at first.

:mod:`harness.compare` gives a change a direction from here, the matrix page and the
terminal table pick their default columns from here. A metric not declared is shown but
never called better or worse: a new figure gets a line here, not a guess per call.
"""

from __future__ import annotations

from enum import Enum


class Direction(Enum):
    WORSE_WHEN_HIGHER = "worse when higher"
    NEUTRAL = "neutral"  # a setting, a label or an observation with no better side


#: the checkers' counts of things that must not happen (or should happen rarely)
ANOMALY_COUNTS = frozenset(
    {
        "lost_acked_writes",
        "lost_before_faults",
        "lost_in_window",
        "lost_after_heal",
        "unknown_writes",
        "unexpected",
        "failed_present",
        "stale_reads",
        "failed_read",
        "counter_violations",
    }
)
#: names ending in ``_ms`` that a test chose (a bound, an injected delay, how long it
#: watched), not something the server did: never better or worse
SETTINGS_MS = frozenset(
    {
        "failover_bound_ms",
        "manual_failover_bound_ms",
        "latency_ms",
        "observed_ms",
        "node_timeout_ms",
    }
)
#: shown first, in this order, where a test has them; the matrix page's default columns
#: are the first three
KEY_METRICS = (
    "failover_ms",
    "lost_acked_writes",
    "unknown_writes",
    "manual_failover_ms",
    "unavailable_ms",
    "fail_detect_ms",
    "converge_ms",
    "rejoin_ms",
    "stale_reads",
    "counter_violations",
)
#: counts shown even when 0: "lost 0" is the news of a consistency test
HEADLINE_COUNTS = frozenset(
    {"lost_acked_writes", "unknown_writes", "stale_reads", "counter_violations"}
)
MATRIX_DEFAULT = KEY_METRICS[:3]


def is_timing(name: str) -> bool:
    """A duration the server took (failover, detection, bring-up)."""
    return name.endswith("_ms") and name not in SETTINGS_MS


def direction(name: str) -> Direction:
    if name in ANOMALY_COUNTS or is_timing(name):
        return Direction.WORSE_WHEN_HIGHER
    return Direction.NEUTRAL


def priority(name: str) -> tuple[int, str]:
    """Sort key: the key metrics in their order, then anomalies, timings, the rest."""
    if name in KEY_METRICS:
        return (KEY_METRICS.index(name), name)
    if name in ANOMALY_COUNTS:
        return (100, name)
    if is_timing(name):
        return (200, name)
    return (300, name)


#: how bad an outcome is: passed and skipped say nothing is wrong, xfailed is a known
#: server bug, failed / error / xpassed are failures
OUTCOME_RANK = {"passed": 0, "skipped": 0, "xfailed": 1, "xpassed": 2, "failed": 2, "error": 2}


def outcome_rank(outcome: str) -> int:
    return OUTCOME_RANK.get(outcome, 2)  # an outcome this version does not know: a failure
