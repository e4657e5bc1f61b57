"""One run of a regression scenario, as its test body sees it: the seed of this
repetition, the evidence gathered so far, and exactly one outcome.

Setup steps run inside :meth:`Regression.setup`: a step that fails leaves the bug
untested, so the run is *inconclusive* (reported as such, never as a reproduction nor as
a pass). pytest-free, so a script can run a scenario body too; the plugin
(:mod:`harness.plugin.regression`) turns :class:`Inconclusive` into a skip with the reason.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from harness.regressions.model import Bug, Expectation, Outcome, RunRecord

if TYPE_CHECKING:  # the cluster is only read; importing it here would be a cycle
    from harness.cluster import Cluster


class Inconclusive(Exception):
    """The scenario could not be carried out as written: neither outcome is known."""


class Regression:
    """The run of ``bug``'s scenario: ``reproduced(...)``, ``not_reproduced(...)`` or
    ``inconclusive(...)``, once, with evidence (log lines, the lost keys, topology rows)."""

    def __init__(
        self,
        bug: Bug,
        *,
        seed: int,
        repetition: int = 1,
        repeats: int = 1,
        expectation: Expectation | None = None,
        test: str = "",
    ) -> None:
        self.bug = bug
        self.seed = seed
        self.repetition = repetition
        self.repeats = repeats
        self.expectation = expectation
        self.test = test
        self.rng = random.Random(seed)
        self.record: RunRecord | None = None
        self._evidence: list[str] = []
        self._t0 = time.monotonic()

    def __repr__(self) -> str:
        return f"<Regression {self.bug.name} {self.repetition}/{self.repeats} seed {self.seed}>"

    @contextlib.contextmanager
    def setup(self, step: str) -> Iterator[None]:
        """A step the scenario needs before it can observe anything: if it raises, the run
        is inconclusive with the step and the error as the reason."""
        try:
            yield
        except Inconclusive:
            raise
        except Exception as exc:  # any failure of a setup step: the bug went untested
            self.inconclusive(f"setup step {step!r} failed: {type(exc).__name__}: {exc}")

    def evidence(self, line: str) -> None:
        """Add one line of evidence (a log line, a CLUSTER NODES row, a lost key)."""
        self._evidence.append(str(line))

    def log_lines(self, cluster: Cluster, pattern: str, max_bytes: int = 2_000_000) -> list[str]:
        """Lines of the nodes' logs matching ``pattern`` (a regex), each as
        ``node-name: line``: the evidence of bugs a server logs."""
        rx = re.compile(pattern)
        return [
            f"{n.name}: {line}"
            for n in [*cluster.nodes, *cluster.retired]
            for line in n.log_text(max_bytes).splitlines()
            if rx.search(line)
        ]

    def reproduced(self, evidence: str, **facts: Any) -> None:
        """The bug showed: ``evidence`` says what was observed."""
        self._finish("reproduced", evidence, facts)

    def not_reproduced(self, evidence: str, **facts: Any) -> None:
        """The scenario ran as written and the bug did not show."""
        self._finish("not-reproduced", evidence, facts)

    def inconclusive(self, why: str, **facts: Any) -> NoReturn:
        """End the run: the scenario could not be carried out (``why``)."""
        self._finish("inconclusive", why, facts)
        raise Inconclusive(why)

    def _finish(self, outcome: Outcome, evidence: str, facts: dict[str, Any]) -> None:
        if self.record is not None:
            raise RuntimeError(
                f"scenario {self.bug.name}: outcome {outcome} after {self.record.outcome}; "
                "a run has exactly one outcome"
            )
        self.record = RunRecord(
            scenario=self.bug.name,
            outcome=outcome,
            evidence=[evidence, *self._evidence],
            facts=facts,
            repetition=self.repetition,
            repeats=self.repeats,
            seed=self.seed,
            test=self.test,
            duration_s=round(time.monotonic() - self._t0, 2),
        )
