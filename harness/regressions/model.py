"""Regression scenarios as data: the documented bug a scenario reproduces (:class:`Bug`),
what one run of it found (:class:`RunRecord`), what a profile expects of a version
(:class:`Expectation`), and the verdicts: one run against the expectation
(:func:`judge`), and all runs of a scenario on one implementation (:func:`tally`).

Pure functions, as checkers are: the pytest plugin (:mod:`harness.plugin.regression`)
only feeds them. An outcome is never pass/fail itself: a bug reproduced where the
profile says the version has it is a green run; the surprise either way is the failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Outcome = Literal["reproduced", "not-reproduced", "inconclusive"]
#: ``reproduced``: every conclusive run reproduces it; ``sometimes``: a racy bug, at
#: least one of :data:`SOMETIMES_MIN_RUNS` or more runs reproduces it; ``not-reproduced``:
#: no run may (the version has the fix, or never had the bug)
Expect = Literal["reproduced", "sometimes", "not-reproduced"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
EXPECTS: tuple[str, ...] = get_args(Expect)
#: a ``sometimes`` bug not seen in this many conclusive runs is a surprise; fewer runs
#: (CI's one) cannot tell a racy bug gone from one that did not fire this time
SOMETIMES_MIN_RUNS = 5

_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Bug:
    """The documented bug (or documented dangerous behaviour) a scenario reproduces,
    as its public report gives it."""

    name: str  # stable, kebab-case: profiles and reports key on it
    reference: str  # the public report(s), e.g. "valkey-io/valkey#974"
    title: str
    affected: str  # the versions the report says have it
    fixed: str = ""  # the versions with the fix; "" while open or by design
    observable: str = ""  # what the scenario measures: "acknowledged writes lost"

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"scenario name {self.name!r}: use kebab-case, e.g. 'fast-restart'")
        if not self.reference:
            raise ValueError(f"scenario {self.name}: give the public report as reference")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Expectation:
    """What a profile expects of one scenario on a version range, and why (the run that
    measured it, the report that says so)."""

    scenario: str
    expect: Expect
    versions: str = ""  # "" = every version of the profile
    ref: str = ""  # the upstream reference of the bug or its fix
    measured: str = ""  # the run that backs the expectation
    #: how the bug shows when it fires by chance in another test: text of the failure
    #: and, optionally, a line of the nodes' logs (reported there as xfailed with ref)
    text: str = ""
    log: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


@dataclass
class RunRecord:
    """One run of a scenario: its outcome, the evidence and facts it measured."""

    scenario: str
    outcome: Outcome
    evidence: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    repetition: int = 1
    repeats: int = 1
    seed: int = 0
    test: str = ""
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def judge(outcome: Outcome, expectation: Expectation | None) -> str | None:
    """Why this one run contradicts the expectation, or None. A racy bug (``sometimes``)
    and a scenario with no expectation are judged only over all their runs."""
    if expectation is None or outcome == "inconclusive":
        return None
    if outcome == "reproduced" and expectation.expect == "not-reproduced":
        return "reproduced where the profile expects it fixed (not-reproduced)"
    if outcome == "not-reproduced" and expectation.expect == "reproduced":
        return "not reproduced where the profile expects it every run (reproduced)"
    return None


@dataclass(frozen=True)
class Tally:
    """All runs of one scenario on one implementation: k of n, and the verdict."""

    scenario: str
    reproduced: int
    not_reproduced: int
    inconclusive: int
    expect: str  # the expectation, or "" when the profile has none
    surprise: str  # why the runs contradict it; "" when they do not

    @property
    def conclusive(self) -> int:
        return self.reproduced + self.not_reproduced

    @property
    def runs(self) -> int:
        return self.conclusive + self.inconclusive

    def rate(self) -> str:
        """``reproduced 2/5`` (inconclusive runs are not in n, and are said apart)."""
        extra = f", {self.inconclusive} inconclusive" if self.inconclusive else ""
        return f"reproduced {self.reproduced}/{self.conclusive}{extra}"


def tally(scenario: str, runs: Sequence[RunRecord], expectation: Expectation | None) -> Tally:
    """The verdict over every run of ``scenario``: a surprise when a run contradicts
    the expectation (:func:`judge`), when a ``sometimes`` bug was not seen in
    :data:`SOMETIMES_MIN_RUNS` conclusive runs, or when no run was conclusive."""
    mine = [r for r in runs if r.scenario == scenario]
    k = sum(r.outcome == "reproduced" for r in mine)
    m = sum(r.outcome == "not-reproduced" for r in mine)
    i = len(mine) - k - m
    expect = expectation.expect if expectation else ""
    why = ""
    if mine and k + m == 0:
        why = f"no conclusive run of {len(mine)}: the scenario's setup failed every time"
    elif expect == "reproduced" and m:
        why = f"not reproduced in {m} of {k + m} runs; the profile expects every run"
    elif expect == "not-reproduced" and k:
        why = f"reproduced in {k} of {k + m} runs; the profile expects none"
    elif expect == "sometimes" and k == 0 and k + m >= SOMETIMES_MIN_RUNS:
        why = f"not reproduced in {k + m} runs; the profile expects it sometimes"
    return Tally(scenario, k, m, i, expect, why)


def scenarios_of(runs: Iterable[RunRecord]) -> list[str]:
    """The scenarios of ``runs``, in the order they first ran."""
    return list(dict.fromkeys(r.scenario for r in runs))
