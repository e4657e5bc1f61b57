"""One interface for every history checker, as Jepsen's ``checker.clj`` has it: a
checker is a named pure function of a history that answers *valid*, *invalid* or
*unknown*, with the figures it measured.

A checker that crashes answers "unknown" with the error (:func:`check_safe`) instead of
taking the other verdicts down with it; composed checkers merge their validity: invalid
wins over unknown, unknown over valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from harness.history import History

Validity = Literal["valid", "invalid", "unknown"]
_ORDER: dict[Validity, int] = {"valid": 0, "unknown": 1, "invalid": 2}

Figures = Mapping[str, int | float]


@dataclass(frozen=True)
class Result:
    """What one checker concluded. ``detail`` is the checker's own result object
    (e.g. :class:`~harness.checkers.sets.SetResult`) for a suite to look into."""

    checker: str
    valid: Validity
    figures: Figures = field(default_factory=dict)
    message: str = ""
    detail: Any = None

    @property
    def ok(self) -> bool:
        return self.valid == "valid"

    def describe(self) -> str:
        return f"[{self.checker}: {self.valid}] {self.message}".rstrip()


class Checker(Protocol):
    """A pure function of a history, with a name for reports."""

    @property
    def name(self) -> str: ...

    def check(self, history: History) -> Result: ...


def merge_valid(values: Iterable[Validity]) -> Validity:
    return max(values, key=_ORDER.__getitem__, default="valid")


def check_safe(checker: Checker, history: History) -> Result:
    """Run ``checker``; if it raises, the answer is "unknown" with the error, never a
    crash of the run (a checker bug must not hide what the other checkers found)."""
    try:
        return checker.check(history)
    except Exception as exc:
        return Result(checker.name, "unknown", {}, f"checker crashed: {type(exc).__name__}: {exc}")


def check_all(checkers: Iterable[Checker], history: History) -> dict[str, Result]:
    """Every checker on the same history, each safely; by name."""
    return {c.name: check_safe(c, history) for c in checkers}


@dataclass(frozen=True)
class Compose:
    """Several checkers as one: validity merged, figures side by side (a figure two
    checkers both measure, such as ``unknown_writes``, is summed)."""

    checkers: tuple[Checker, ...]
    name: str = "compose"

    def check(self, history: History) -> Result:
        results = check_all(self.checkers, history)
        figures: dict[str, int | float] = {}
        for r in results.values():
            for k, v in r.figures.items():
                figures[k] = figures.get(k, 0) + v
        return Result(
            self.name,
            merge_valid(r.valid for r in results.values()),
            figures,
            "\n".join(r.describe() for r in results.values()),
            results,
        )
