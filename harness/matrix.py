"""One page over many runs (``python -m harness report DIR...``): implementation x test,
each cell the outcome and the chosen metrics, each column linked to its run's own page.

:func:`build` is pure (runs in, a :class:`Matrix` out); :func:`load_columns` reads the
directories. A directory without ``summary.json`` (a run that died) is a column that says
so, not an error: the page over a CI job shows what did not finish too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import metricinfo
from harness.errors import UsageError
from harness.rules import Rule
from harness.summaries import Run, fmt, load, summary_file


@dataclass(frozen=True)
class Column:
    path: str  # the directory as given
    run: Run | None  # None: it has no summary.json
    link: str | None = None  # the run's page (or summary.json), relative to the matrix page
    label: str = ""  # filled by build: the implementation, unique across columns

    @property
    def totals(self) -> Mapping[str, int]:
        return dict(self.run.meta.get("totals") or {}) if self.run else {}


@dataclass(frozen=True)
class Cell:
    outcome: str | None  # None: the run has no such test
    values: tuple[tuple[str, str], ...] = ()  # (metric, value) of the chosen ones it has
    message: str = ""

    @property
    def verdict(self) -> str:
        """On the rule: ``pass``, ``fail``, ``n/a`` (the implementation lacks a capability
        the rule needs), ``divergence`` (one its profile documents), ``known issue`` or
        the outcome itself (skipped for another reason, error)."""
        if self.outcome == "passed":
            return "pass"
        if self.outcome == "failed":
            return "fail"
        if self.outcome == "skipped" and " lacks " in self.message:
            return "n/a"
        if self.outcome == "xfailed":
            return "divergence" if "documented divergence" in self.message else "known issue"
        return self.outcome or ""


@dataclass(frozen=True)
class Row:
    nodeid: str
    cells: tuple[Cell, ...]
    rule: Rule | None = None  # the rule the test states, from the first run that says

    @property
    def differs(self) -> bool:
        """Whether the runs disagree on this test's outcome (the rows worth a look)."""
        return len({c.outcome for c in self.cells if c.outcome is not None}) > 1


@dataclass(frozen=True)
class ScenarioCell:
    """One regression scenario on one run: ``reproduced k/n`` and the verdict."""

    rate: str | None  # None: the run did not run it
    expect: str = ""
    surprise: str = ""


@dataclass(frozen=True)
class ScenarioRow:
    scenario: str
    reference: str
    cells: tuple[ScenarioCell, ...]


@dataclass(frozen=True)
class Matrix:
    columns: tuple[Column, ...]
    metrics: tuple[str, ...]
    rows: tuple[Row, ...]
    #: regression scenarios x runs: which known bugs each implementation still has
    scenarios: tuple[ScenarioRow, ...] = ()


def _labels(columns: Sequence[Column]) -> list[str]:
    base = [c.run.implementation if c.run else Path(c.path).name or c.path for c in columns]
    return [
        f"{b} ({Path(c.path).name or c.path})" if base.count(b) > 1 else b
        for b, c in zip(base, columns, strict=True)
    ]


def build(columns: Sequence[Column], metrics: Sequence[str] = metricinfo.MATRIX_DEFAULT) -> Matrix:
    """The matrix of ``columns`` (one per run); rows in the order the runs ran them."""
    if not columns:
        raise UsageError("report: name at least one report directory")
    order: dict[str, None] = {}
    for c in columns:
        order.update(dict.fromkeys(c.run.tests if c.run else ()))
    rows = []
    for nodeid in order:
        cells = []
        rule = next(
            (t.rule for c in columns if c.run and (t := c.run.tests.get(nodeid)) and t.rule),
            None,
        )
        for c in columns:
            t = c.run.tests.get(nodeid) if c.run else None
            if t is None:
                cells.append(Cell(None))
                continue
            values = tuple((m, fmt(t.metrics[m])) for m in metrics if m in t.metrics)
            cells.append(Cell(t.outcome, values, t.message))
        rows.append(Row(nodeid, tuple(cells), rule))
    labelled = tuple(
        Column(c.path, c.run, c.link, label)
        for c, label in zip(columns, _labels(columns), strict=True)
    )
    return Matrix(labelled, tuple(metrics), tuple(rows), _scenarios(columns))


def _scenarios(columns: Sequence[Column]) -> tuple[ScenarioRow, ...]:
    """The ``regressions`` rows of each run's summary, one row per scenario."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for i, c in enumerate(columns):
        for row in c.run.meta.get("regressions") or () if c.run else ():
            if isinstance(row, dict) and row.get("scenario"):
                found.setdefault(str(row["scenario"]), {})[i] = row
    out = []
    for name, by_column in found.items():
        first = next(iter(by_column.values()))
        cells = []
        for i in range(len(columns)):
            row = by_column.get(i)
            expect = (row.get("expectation") or {}).get("expect", "") if row else ""
            cells.append(
                ScenarioCell(str(row.get("rate", "?")), str(expect), str(row.get("surprise", "")))
                if row
                else ScenarioCell(None)
            )
        ref = str((first.get("bug") or {}).get("reference", ""))
        out.append(ScenarioRow(name, ref, tuple(cells)))
    return tuple(out)


def link_for(directory: str, page_dir: Path) -> str | None:
    """The run's own page when it has one, else its summary.json, relative to the page."""
    d = Path(directory)
    for name in ("index.html", "summary.json"):
        if (d / name).is_file():
            return Path(os.path.relpath((d / name).absolute(), page_dir.absolute())).as_posix()
    return None


def load_columns(directories: Sequence[str], page_dir: Path) -> list[Column]:
    """A column per directory; one that does not exist (a typo) is bad input."""
    columns = []
    for d in directories:
        if not Path(d).is_dir():
            raise UsageError(f"{d}: no such report directory")
        run = load(d) if summary_file(d).is_file() else None
        columns.append(Column(d, run, link_for(d, page_dir)))
    return columns


def render_text(matrix: Matrix) -> list[str]:
    """A few lines for the terminal: what each column holds."""
    out = []
    for c in matrix.columns:
        totals = ", ".join(f"{n} {k}" for k, n in c.totals.items()) or "no summary.json"
        out.append(f"  {c.label}: {totals}  [{c.path}]")
    differ = sum(r.differs for r in matrix.rows)
    out.append(f"{len(matrix.rows)} tests, {differ} with outcomes that differ between runs")
    out += divergences(matrix)
    return out


def divergences(matrix: Matrix, width: int = 200) -> list[str]:
    """Where an implementation breaks a rule a test states, a line per rule: ``keydb-6
    6.3.4: MUST: ... (fail on MGET, MSET: <the first failure>) [test]``; the cases of a
    parametrized test share a line (they share the rule), documented divergences say so."""
    groups: dict[tuple[int, str, str], list[tuple[str, Cell, Rule]]] = {}
    for r in matrix.rows:
        if r.rule is None:
            continue
        base, _, case = r.nodeid.partition("[")
        for i, cell in enumerate(r.cells):
            if cell.verdict in ("fail", "divergence", "known issue"):
                hits = groups.setdefault((i, base, cell.verdict), [])
                hits.append((case.removesuffix("]"), cell, r.rule))
    out = []
    for (i, base, verdict), hits in groups.items():
        cases = [case for case, _, _ in hits if case]
        first, rule = hits[0][1], hits[0][2]
        said = verdict + (f" on {', '.join(cases)}" if cases else "")
        if first.message:
            said += ": " + _clip(first.message.removeprefix("AssertionError: "), width)
        text = rule.text.replace("``", "")
        out.append(f"  {matrix.columns[i].label}: {rule.level}: {text} ({said}) [{base}]")
    return out


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."
