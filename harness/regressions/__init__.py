"""Regression scenarios: documented cluster bugs, each reproduced from its public report
by a test in ``suites/regressions``, run any number of times and reported as *reproduced
k of n* against what the implementation's profile expects of its version.

The model and verdicts are in :mod:`harness.regressions.model`; a scenario is written
with the ``regression`` fixture (:class:`Regression`, :mod:`harness.plugin.regression`).
"""

from harness.regressions.model import (
    SOMETIMES_MIN_RUNS,
    Bug,
    Expect,
    Expectation,
    Outcome,
    RunRecord,
    Tally,
    judge,
    tally,
)
from harness.regressions.run import Inconclusive, Regression

__all__ = [
    "SOMETIMES_MIN_RUNS",
    "Bug",
    "Expect",
    "Expectation",
    "Inconclusive",
    "Outcome",
    "Regression",
    "RunRecord",
    "Tally",
    "judge",
    "tally",
]
