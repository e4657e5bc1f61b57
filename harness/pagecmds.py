"""The ``compare`` and ``report`` subcommands: pages over finished runs' report
directories (:mod:`harness.compare`, :mod:`harness.matrix`, :mod:`harness.pages`)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from harness import metricinfo
from harness.errors import UsageError

_METRIC = re.compile(r"[A-Za-z_][\w.]*")


def add_commands(sub: Any) -> None:
    """Add both subcommands to ``sub`` (the argparse subparsers of :mod:`harness.cli`)."""
    cmp = sub.add_parser(
        "compare",
        help="what changed from run A to run B (outcomes, metric deltas, tests in one only); "
        "exit 1 when B is worse",
        description="Exit status: 0 B is not worse, 1 B is worse (an outcome got worse or a "
        "metric broke a threshold), 2 bad input.",
    )
    cmp.add_argument("a", metavar="DIR_A", help="report directory (or summary.json) of run A")
    cmp.add_argument("b", metavar="DIR_B", help="report directory (or summary.json) of run B")
    cmp.add_argument(
        "--max",
        action="append",
        default=[],
        metavar="METRIC=N",
        help="B's METRIC must not exceed N, e.g. lost_acked_writes=0 (METRIC may be a glob: "
        "'lost_*=0'); repeatable",
    )
    cmp.add_argument(
        "--max-increase",
        action="append",
        default=[],
        metavar="METRIC=N[%]",
        help="B's METRIC may exceed A's by at most N, or N %% of A's, e.g. failover_ms=50%%; "
        "repeatable",
    )
    cmp.add_argument(
        "--out",
        metavar="FILE",
        default="reports/compare.html",
        help="where the HTML page goes (default reports/compare.html)",
    )
    rep = sub.add_parser(
        "report",
        help="one HTML page over many runs: implementation x test, outcome and metrics per "
        "cell, linked to each run's page",
    )
    rep.add_argument("dirs", nargs="+", metavar="DIR", help="report directories, a column each")
    rep.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="a metric to show in each cell, repeatable (default: "
        + ", ".join(metricinfo.MATRIX_DEFAULT)
        + ")",
    )
    rep.add_argument(
        "--out",
        metavar="FILE",
        default="reports/matrix.html",
        help="where the page goes (default reports/matrix.html)",
    )


def run(args: argparse.Namespace) -> int:
    if args.command == "compare":
        return _compare(args)
    return _report(args)


def _out(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise UsageError(f"--out {text}: is a directory; name the page's file")
    return path


def _compare(args: argparse.Namespace) -> int:
    from harness import compare, pages, summaries

    thresholds = [compare.parse_threshold("max", t) for t in args.max]
    thresholds += [compare.parse_threshold("max-increase", t) for t in args.max_increase]
    out = _out(args.out)
    cmp = compare.compare(summaries.load(args.a), summaries.load(args.b), thresholds)
    for line in compare.render_text(cmp):
        print(line)
    print(f"page: {pages.write(out, pages.comparison_page(cmp))}")
    return compare.exit_status(cmp)


def _report(args: argparse.Namespace) -> int:
    from harness import matrix, pages

    names = args.metric or list(metricinfo.MATRIX_DEFAULT)
    bad = [n for n in names if not _METRIC.fullmatch(n)]
    if bad:
        raise UsageError(f"--metric {bad[0]!r}: a metric name (letters, digits, '_', '.')")
    out = _out(args.out)
    m = matrix.build(matrix.load_columns(args.dirs, out.parent), names)
    seen = {n for c in m.columns if c.run for t in c.run.tests.values() for n in t.metrics}
    for n in names:
        if n not in seen:
            print(f"harness: note: no test in these runs has a metric {n!r}", file=sys.stderr)
    for line in matrix.render_text(m):
        print(line)
    print(f"page: {pages.write(out, pages.matrix_page(m))}")
    return 0
