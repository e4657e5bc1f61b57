"""HTML pages over several runs (the comparison, the matrix), rendered with Jinja2 from
the templates shipped in ``harness/templates``. Pages are self-contained: the style is
inline and nothing is fetched from elsewhere, so a CI artifact opens offline."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from harness import metricinfo
from harness.compare import Comparison
from harness.matrix import Matrix
from harness.summaries import fmt


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("harness", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,  # a misspelt field fails the render, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["anomalies"] = metricinfo.ANOMALY_COUNTS
    env.filters["fmt"] = fmt
    return env


def comparison_page(cmp: Comparison) -> str:
    return _env().get_template("compare.html.j2").render(cmp=cmp)


def matrix_page(matrix: Matrix) -> str:
    return _env().get_template("matrix.html.j2").render(m=matrix)


def write(path: Path, html: str) -> Path:
    """Write atomically: a browser reloading the page never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
