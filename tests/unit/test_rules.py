"""harness.rules (the rule a test's docstring states) and where it shows: the matrix's
per-rule verdicts and divergence lines, and a profile's documented divergences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import matrix, summaries
from harness.profiles import ProfileError, read
from harness.report import SCHEMA
from harness.rules import Rule, rule_of


def test_level_first_sentence_and_source() -> None:
    doc = """MUST NOT: a master that answers nothing for less than the node timeout is
    flagged ``fail``. Observed for half the node timeout, e.g. 1 s.

    Redis Cluster specification, "Failure detection".
    """
    assert rule_of(doc) == Rule(
        "MUST NOT",
        "a master that answers nothing for less than the node timeout is flagged ``fail``.",
        'Redis Cluster specification, "Failure detection".',
    )
    assert rule_of("SHOULD answer TRYAGAIN") == Rule("SHOULD", "answer TRYAGAIN", "")
    assert rule_of("Checks things.") is None and rule_of(None) is None
    long = rule_of("MAY: " + "x" * 500)
    assert long is not None and len(long.text) == 240 and long.text.endswith("...")
    assert Rule.from_dict(long.as_dict()) == long and Rule.from_dict("x") is None


def run(impl: str, *tests: dict[str, Any]) -> matrix.Column:
    s = {
        "schema": SCHEMA,
        "implementation": {"name": impl, "version": "1"},
        "backend": "local",
        "tests": list(tests),
    }
    return matrix.Column(impl, summaries.from_summary(impl, s))


RULE = {"level": "MUST", "text": "MSET of keys of two slots is refused.", "source": "spec"}


def test_matrix_reads_each_cell_as_a_verdict_on_the_rule() -> None:
    def t(outcome: str, message: str = "") -> dict[str, Any]:
        return {"nodeid": "a::mset", "outcome": outcome, "rule": RULE, "message": message}

    m = matrix.build(
        [
            run("redis", t("passed")),
            run("keydb", t("failed", "MSET across slots of one node accepted")),
            run("old", t("skipped", "redis-6.2 lacks cluster_shards")),
            run("fork", t("xfailed", "documented divergence fork#1: accepted")),
        ]
    )
    (row,) = m.rows
    assert row.rule == Rule.from_dict(RULE)
    assert [c.verdict for c in row.cells] == ["pass", "fail", "n/a", "divergence"]
    assert matrix.divergences(m) == [
        "  keydb 1: MUST: MSET of keys of two slots is refused. "
        "(fail: MSET across slots of one node accepted) [a::mset]",
        "  fork 1: MUST: MSET of keys of two slots is refused. "
        "(divergence: documented divergence fork#1: accepted) [a::mset]",
    ]


def test_profile_divergences(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[profiles.k]\nflavor = "keydb"\nversions = ">=6"\n[profiles.k.divergences]\n'
        '"test_multikey.py::test_mset" = "keydb docs: multi-key on one node"\n'
    )
    p = read(f, "p.toml")["k"]
    ref = "keydb docs: multi-key on one node"
    assert p.divergence("suites/conformance/test_multikey.py::test_mset[MSET]") == ref
    assert p.divergence("harness/suites/conformance/test_multikey.py::test_mset") == ref
    assert p.divergence("suites/conformance/test_multikey.py::test_other") is None
    f.write_text(
        '[profiles.k]\nflavor = "keydb"\nversions = ">=6"\n[profiles.k.divergences]\n'
        '"mset" = "x"\n"test_a.py::test_b" = ""\n'
    )
    with pytest.raises(ProfileError) as err:
        read(f, "p.toml")
    assert err.value.mistakes == [
        "p.toml: profile 'k': divergences: 'mset': name a suite test as test_file.py::test_name",
        "p.toml: profile 'k': divergences.test_a.py::test_b: give the reference that documents it",
    ]


def test_cases_of_one_parametrized_test_share_a_divergence_line() -> None:
    rule = {"level": "MUST", "text": "``MGET`` and ``MSET`` need one slot;", "source": ""}

    def t(case: str, outcome: str, message: str = "") -> dict[str, Any]:
        nodeid = f"m.py::test_strings[{case}]"
        return {"nodeid": nodeid, "outcome": outcome, "rule": rule, "message": message}

    long = "AssertionError: MGET: keys of different slots MUST be refused, " + "x" * 300
    m = matrix.build([run("keydb", t("MGET", "failed", long), t("MSET", "failed", "MSET: ok"))])
    (line,) = matrix.divergences(m, width=60)
    assert line == (
        "  keydb 1: MUST: MGET and MSET need one slot; (fail on MGET, MSET: MGET: keys of "
        "different slots MUST be refused, xxxxxxxxxx...) [m.py::test_strings]"
    )
