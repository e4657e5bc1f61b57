"""The regression verdicts (pure): one run against the profile, k of n over runs, and
the [regressions] table of a profiles file, its mistakes one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.profiles import ProfileError, read
from harness.regressions import SOMETIMES_MIN_RUNS, Bug, Expectation, RunRecord, judge, tally
from harness.regressions.model import Outcome


def runs(*outcomes: Outcome, name: str = "s") -> list[RunRecord]:
    return [RunRecord(name, o, repetition=i + 1) for i, o in enumerate(outcomes)]


def expect(what: str) -> Expectation:
    return Expectation("s", what)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "expected", "surprise"),
    [
        ("reproduced", "reproduced", False),
        ("reproduced", "not-reproduced", True),
        ("reproduced", "sometimes", False),
        ("not-reproduced", "reproduced", True),
        ("not-reproduced", "sometimes", False),
        ("not-reproduced", "not-reproduced", False),
        ("inconclusive", "reproduced", False),
        ("inconclusive", "not-reproduced", False),
    ],
)
def test_one_run_is_a_surprise_only_against_a_firm_expectation(
    outcome: Outcome, expected: str, surprise: bool
) -> None:
    assert (judge(outcome, expect(expected)) is not None) is surprise
    assert judge(outcome, None) is None


def test_k_of_n_leaves_inconclusive_runs_out_of_n() -> None:
    t = tally("s", runs("reproduced", "inconclusive", "not-reproduced"), expect("sometimes"))
    assert (t.reproduced, t.not_reproduced, t.inconclusive) == (1, 1, 1)
    assert t.rate() == "reproduced 1/2, 1 inconclusive"
    assert t.surprise == ""


def test_a_racy_bug_never_seen_is_a_surprise_only_after_enough_runs() -> None:
    few = tally("s", runs(*["not-reproduced"] * (SOMETIMES_MIN_RUNS - 1)), expect("sometimes"))
    assert few.surprise == ""
    many = tally("s", runs(*["not-reproduced"] * SOMETIMES_MIN_RUNS), expect("sometimes"))
    assert (
        many.surprise
        == f"not reproduced in {SOMETIMES_MIN_RUNS} runs; the profile expects it sometimes"
    )


def test_firm_expectations_and_runs_with_no_conclusion() -> None:
    assert tally("s", runs("reproduced", "not-reproduced"), expect("reproduced")).surprise == (
        "not reproduced in 1 of 2 runs; the profile expects every run"
    )
    assert tally("s", runs("reproduced"), expect("not-reproduced")).surprise == (
        "reproduced in 1 of 1 runs; the profile expects none"
    )
    assert tally("s", runs("inconclusive", "inconclusive"), None).surprise.startswith(
        "no conclusive run of 2"
    )
    assert tally("s", runs("reproduced", name="other"), None).runs == 0


def test_bug_names_are_stable_keys() -> None:
    with pytest.raises(ValueError, match="kebab-case"):
        Bug(name="Takeover Bug", reference="x#1", title="t", affected="all")
    with pytest.raises(ValueError, match="public report"):
        Bug(name="b", reference="", title="t", affected="all")


def test_profile_expectations_by_version(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[profiles.v]\nflavor = "valkey"\nversions = ">=8.0,<8.1"\n'
        "[profiles.v.regressions]\n"
        'a = { expect = "sometimes", ref = "r#1", text = "boom" }\n'
        'b = [{ versions = "<8.0.5", expect = "reproduced", ref = "r#2" },\n'
        '     { versions = ">=8.0.5", expect = "not-reproduced", ref = "r#2 fix" }]\n'
    )
    p = read(f, "p.toml")["v"]
    assert p.expectation("b", (8, 0, 1)).expect == "reproduced"  # type: ignore[union-attr]
    assert p.expectation("b", (8, 0, 6)).expect == "not-reproduced"  # type: ignore[union-attr]
    assert p.expectation("a", (8, 0, 1)).ref == "r#1"  # type: ignore[union-attr]
    assert p.expectation("c", (8, 0, 1)) is None
    # a failure elsewhere showing the bug is named by its scenario
    assert p.known_issue("it went boom") == "r#1 (regression scenario a)"


def test_profile_expectation_mistakes_are_one_line_each(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[profiles.v]\nflavor = "valkey"\nversions = ">=8.0"\n'
        "[profiles.v.regressions]\n"
        'a = { expect = "maybe", ref = "r" }\n'
        'b = [{ versions = "8.0.5", expect = "reproduced", ref = "r" }]\n'
        'c = { expect = "reproduced" }\n'
        'd = { expect = "reproduced", ref = "r", note = "x" }\n'
        'e = "reproduced"\n'
    )
    with pytest.raises(ProfileError) as err:
        read(f, "p.toml")
    assert err.value.mistakes == [
        "p.toml: profile 'v': regressions.a: expect 'maybe': one of reproduced, sometimes, "
        "not-reproduced",
        "p.toml: profile 'v': regressions.b[0]: versions '8.0.5': bad version clause '8.0.5'",
        "p.toml: profile 'v': regressions.c: missing field 'ref'",
        "p.toml: profile 'v': regressions.d: unknown field 'note' (fields: expect, ref, "
        "measured, versions, text, log)",
        'p.toml: profile \'v\': regressions.e: give { expect = "reproduced", ref = "..." }',
    ]
