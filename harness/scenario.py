"""A chaos test as one value: a recorded workload, the faults that happen meanwhile,
and the checkers that judge the history (Jepsen's test map, in Python).

The cluster comes from the caller (the ``cluster`` fixture, or :meth:`Cluster.start`);
a :class:`Scenario` says what clients do (:class:`~harness.workload.WorkloadSpec`
fields), what breaks (a function of the cluster, or a seeded
:mod:`~harness.nemesis` schedule that is then really executed and stored), and which
:class:`~harness.checkers.base.Checker` s judge. :meth:`Scenario.run` leaves the history,
the schedule and the verdicts in ``artifacts`` and returns an :class:`Outcome`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import nemesis, progress
from harness.checkers.base import Checker, Result, Validity, check_all, merge_valid
from harness.history import History

if TYPE_CHECKING:
    from harness.cluster import Cluster
    from harness.workload import Workload

#: what breaks, while the workload runs: a function of the cluster
FaultPlan = Callable[["Cluster"], None]
#: builds a workload for a cluster from WorkloadSpec fields (the ``workload`` fixture)
WorkloadFactory = Callable[..., "Workload"]


def steps(
    schedule: Sequence[nemesis.Step],
    rng: random.Random,
    hold: nemesis.Hold | None = None,
    ready_timeout: float | None = None,
) -> FaultPlan:
    """A nemesis schedule as a fault plan (see :func:`harness.nemesis.execute`)."""

    def run(cluster: Cluster) -> None:
        nemesis.execute(cluster, schedule, rng, ready_timeout, hold)

    return run


@dataclass
class Outcome:
    """The history of one scenario run and what each checker said of it."""

    history: History
    results: dict[str, Result]

    @property
    def valid(self) -> Validity:
        return merge_valid(r.valid for r in self.results.values())

    @property
    def figures(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        for r in self.results.values():
            for k, v in r.figures.items():
                out[k] = out.get(k, 0) + v
        return out

    def describe(self) -> str:
        return "\n".join(r.describe() for r in self.results.values())

    def record(self, metrics: Any) -> None:
        """Every figure into ``metrics`` (the pytest fixture, or anything with
        ``record(name, value)``)."""
        for name, value in self.figures.items():
            metrics.record(name, value)

    def __getitem__(self, checker: str) -> Result:
        return self.results[checker]

    def assert_valid(self) -> None:
        """Fail with every checker's account unless all of them said valid."""
        assert self.valid == "valid", f"verdict {self.valid}:\n{self.describe()}"


@dataclass
class Scenario:
    """Workload + faults + checkers. ``warmup_ops`` complete before the faults start,
    ``settle_ops`` after they ended; the final read follows."""

    workload: Mapping[str, Any]
    faults: FaultPlan
    checkers: Sequence[Checker]
    warmup_ops: int = 500
    settle_ops: int = 300
    schedule: Sequence[nemesis.Step] = ()
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def run(
        self, cluster: Cluster, workload: WorkloadFactory, artifacts: Path | None = None
    ) -> Outcome:
        """Run the workload, apply the faults under it, read back, judge."""
        if artifacts is not None and self.schedule:
            nemesis.save(self.schedule, artifacts / "schedule.json", self.seed or 0)
        wl = workload(cluster, **self.workload)
        with wl.running():
            progress.phase(f"load running: warm-up, {self.warmup_ops} ops")
            wl.wait_ops(self.warmup_ops)
            self.faults(cluster)
            progress.phase(f"faults over: settling, {self.settle_ops} ops")
            wl.wait_ops(self.settle_ops)
        history = wl.final_read()
        progress.phase(f"checking: {', '.join(c.name for c in self.checkers)}")
        outcome = Outcome(history, check_all(self.checkers, history))
        if artifacts is not None:
            history.write_jsonl(artifacts / "history.jsonl")
            (artifacts / "verdict.txt").write_text(outcome.describe() + "\n")
        return outcome
