"""The ``regression`` fixture and ``--repeat``: a test marked
``@pytest.mark.regression(BUG)`` is one run of a documented bug's scenario
(:mod:`harness.regressions`). Its outcome is judged against what the implementation's
profile expects of its version: the test fails only on a surprise (a bug back where the
profile says fixed, or gone where it says present), and an inconclusive run is a skip
with the reason. Every run travels as a ``regression`` user property (its JSON), gathered
by the reporter into ``summary.json`` as k of n per scenario.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.plugin.state import STATE, HarnessState
from harness.plugin.workers import plain_nodeid
from harness.regressions.model import Bug, Expectation, judge
from harness.regressions.run import Inconclusive, Regression
from harness.regressions.summary import PROPERTY

_RUN = pytest.StashKey[Regression]()


def bug_of(item: pytest.Item) -> Bug | None:
    """The Bug of an item's ``regression`` marker, or None (a usage error if it is not one)."""
    mark = item.get_closest_marker("regression")
    if mark is None:
        return None
    bug = mark.args[0] if mark.args else mark.kwargs.get("bug")
    if not isinstance(bug, Bug):
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.regression takes a harness.regressions.Bug, got {bug!r}"
        )
    return bug


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``--repeat N``: each regression scenario N times, ``run1of5`` ... in its id."""
    n = metafunc.config.stash[STATE].repeat
    if n > 1 and metafunc.definition.get_closest_marker("regression") is not None:
        metafunc.fixturenames.append("harness_repetition")
        metafunc.parametrize(
            "harness_repetition",
            range(1, n + 1),
            indirect=True,
            ids=[f"run{i}of{n}" for i in range(1, n + 1)],
        )


@pytest.fixture
def harness_repetition(request: pytest.FixtureRequest) -> int:
    """Which of the ``--repeat`` runs this is (1 without ``--repeat``)."""
    return int(getattr(request, "param", 1))


def repetition_seed(run_seed: int, scenario: str, repetition: int) -> int:
    """The seed of one run: the run's ``--seed``, the scenario and the repetition, so
    ``--seed S --repeat N`` replays every run."""
    return random.Random(f"{run_seed}:{scenario}:{repetition}").randrange(2**31)


@pytest.fixture
def regression(
    request: pytest.FixtureRequest, harness_state: HarnessState, harness_repetition: int
) -> Iterator[Regression]:
    """This run of the test's scenario (``@pytest.mark.regression(BUG)``): record exactly
    one of ``reproduced(evidence)``, ``not_reproduced(evidence)``, ``inconclusive(why)``;
    steps that must work for the scenario to mean anything go in ``with
    regression.setup("step"):``."""
    item = request.node
    bug = bug_of(item)
    if bug is None:
        raise pytest.UsageError(
            f"{item.nodeid}: the regression fixture needs @pytest.mark.regression(BUG)"
        )
    expectation = None
    try:
        impl = harness_state.implementation()
        expectation = impl.profile.expectation(bug.name, impl.version)
    except HarnessError:  # no implementation yet: the cluster fixture will say why
        pass
    repeats = harness_state.repeat
    seed = repetition_seed(harness_state.seed, bug.name, harness_repetition)
    run = Regression(
        bug,
        seed=seed,
        repetition=harness_repetition,
        repeats=repeats,
        expectation=expectation,
        test=plain_nodeid(item.nodeid),
    )
    expected = f"expected {expectation.expect}" if expectation else "no expectation in the profile"
    print(
        f"regression {bug.name} ({bug.reference}): run {harness_repetition}/{repeats}, "
        f"seed {seed} (replay: --seed {harness_state.seed} --repeat {repeats}); {expected}"
    )
    item.stash[_RUN] = run
    yield run


class Verdicts:
    """The hook that judges a scenario's run (a plugin object of its own: the package's
    ``pytest_runtest_call`` is the deadline's)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from _judged(item))


def _judged(item: pytest.Item) -> Generator[None, Any, Any]:
    """After the body: the outcome on the item's properties, and the verdict: a skip
    for an inconclusive run, a failure for a surprise or a run with no outcome."""
    try:
        result = yield
    except Inconclusive as exc:
        _keep(item)
        raise pytest.skip.Exception(f"inconclusive: {exc}", _use_item_location=True) from None
    except BaseException as exc:
        run = item.stash.get(_RUN, None)
        if run is not None and run.record is None and isinstance(exc, Exception):
            # a crash of the scenario is no outcome: counted as inconclusive, still failing
            _record_error(run, exc)
        _keep(item)
        raise
    run = item.stash.get(_RUN, None)
    if run is None:
        return result
    _keep(item)
    if run.record is None:
        raise pytest.fail.Exception(
            f"scenario {run.bug.name} recorded no outcome: call regression.reproduced(), "
            "not_reproduced() or inconclusive()",
            pytrace=False,
        )
    surprise = judge(run.record.outcome, run.expectation)
    if surprise:
        raise pytest.fail.Exception(_surprise(run, surprise), pytrace=False)
    return result


def _record_error(run: Regression, exc: Exception) -> None:
    with contextlib.suppress(Inconclusive):
        run.inconclusive(f"the scenario raised {type(exc).__name__}: {exc}")


def _surprise(run: Regression, why: str) -> str:
    assert run.record is not None and run.expectation is not None
    e: Expectation = run.expectation
    lines = [
        f"SURPRISE in regression {run.bug.name} ({run.bug.reference}): {why}",
        f"  profile expectation: {e.expect}"
        + (f" for {e.versions}" if e.versions else "")
        + (f" ({e.ref})" if e.ref else "")
        + (f"; measured: {e.measured}" if e.measured else ""),
        f"  run {run.repetition}/{run.repeats}, seed {run.seed}; evidence:",
        *(f"    {line}" for line in run.record.evidence),
    ]
    return "\n".join(lines)


def _keep(item: pytest.Item) -> None:
    run = item.stash.get(_RUN, None)
    if run is None or run.record is None:
        return
    state = item.config.stash[STATE]
    impl = state.implementation_meta() or {}
    data = {
        **run.record.as_dict(),
        "bug": run.bug.as_dict(),
        "impl": impl.get("name", ""),
        "version": impl.get("version", ""),
        "expectation": run.expectation.as_dict() if run.expectation else None,
    }
    if all(k != PROPERTY for k, _ in item.user_properties):
        item.user_properties.append((PROPERTY, json.dumps(data)))
