"""Finished runs read back from their report directories, for the pages over several runs
(:mod:`harness.compare`, :mod:`harness.matrix`).

A run is what ``summary.json`` says (:func:`harness.report.build_summary`); bad input (no
such directory, a file that is not a summary) is a :class:`UsageError` in one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report import SCHEMA, Value, short_id
from harness.report import fmt_value as fmt
from harness.rules import Rule


@dataclass(frozen=True)
class Test:
    nodeid: str
    outcome: str
    duration_s: float = 0.0
    metrics: Mapping[str, Value] = field(default_factory=dict)
    message: str = ""
    rule: Rule | None = None  # the rule the test states (harness.rules)


@dataclass(frozen=True)
class Run:
    """One run: where it is, what it ran against, its tests by node id (run order)."""

    path: str  # as the user named it
    meta: Mapping[str, Any]
    tests: Mapping[str, Test]

    @property
    def implementation(self) -> str:
        """``redis-7.0 7.0.15``; the binary's name when no profile named it."""
        impl = self.meta.get("implementation") or {}
        name = str(impl.get("name") or Path(str(impl.get("binary") or "?")).name)
        version = impl.get("version")
        return f"{name} {version}" if version and str(version) not in name else name

    def describe(self) -> str:
        m = self.meta
        bits = [self.implementation, f"backend {m.get('backend', '?')}"]
        if m.get("seed") is not None:
            bits.append(f"seed {m['seed']}")
        if m.get("started"):
            bits.append(f"started {m['started']}")
        return ", ".join(bits)


def from_summary(path: str, summary: Mapping[str, Any]) -> Run:
    """A :class:`Run` from a parsed ``summary.json`` (no file access: tests build these)."""
    if summary.get("schema") != SCHEMA or not isinstance(summary.get("tests"), list):
        raise UsageError(f"{path}: not a redis-cluster-harness summary ({SCHEMA})")
    tests: dict[str, Test] = {}
    for t in summary["tests"]:
        try:
            tests[str(t["nodeid"])] = Test(
                nodeid=str(t["nodeid"]),
                outcome=str(t["outcome"]),
                duration_s=float(t.get("duration_s", 0.0)),
                metrics=dict(t.get("metrics") or {}),
                message=str(t.get("message", "")),
                rule=Rule.from_dict(t.get("rule")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UsageError(
                f"{path}: a test entry without nodeid and outcome: {t!r:.80}"
            ) from None
    meta = {k: v for k, v in summary.items() if k not in ("tests", "schema")}
    return Run(path=path, meta=meta, tests=tests)


def summary_file(where: str) -> Path:
    """``DIR/summary.json``, or the file itself when ``where`` names one."""
    p = Path(where)
    if p.is_dir():
        return p / "summary.json"
    if p.is_file():
        return p
    raise UsageError(f"{where}: no such report directory")


def load(where: str) -> Run:
    path = summary_file(where)
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{where}: no summary.json (did the run finish?)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a redis-cluster-harness summary (not JSON: {exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(summary, dict):
        raise UsageError(f"{path}: not a redis-cluster-harness summary ({SCHEMA})")
    return from_summary(where, summary)


def is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


__all__ = [
    "Run",
    "Test",
    "Value",
    "fmt",
    "from_summary",
    "is_number",
    "load",
    "short_id",
    "summary_file",
]
