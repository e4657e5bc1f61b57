"""``index.html`` of a report directory: the run's header, a verdict per test, and per
test its timeline (ops, latency, fault windows, failover phases), write availability per
shard, lost writes, schedule and node logs; and the upgrade rehearsals of the run, each as
a timeline of steps with the checks after each (:mod:`~harness.htmlreport.upgrades`).

Layers: :mod:`~harness.htmlreport.persist` (what the plugin writes per test at
teardown), :mod:`~harness.htmlreport.load` (files back), :mod:`~harness.htmlreport.model`
and :mod:`~harness.htmlreport.upgrades` (pure: files to page model),
:mod:`~harness.htmlreport.figures` and :mod:`~harness.htmlreport.render` (Plotly, Jinja2).
:func:`build` runs them in turn.
"""

from __future__ import annotations

from pathlib import Path

from harness.htmlreport.load import load_run
from harness.htmlreport.model import run_view
from harness.htmlreport.render import render, write_page


def build(report_dir: Path) -> Path:
    """Write ``report_dir/index.html`` from ``summary.json`` and the artifacts."""
    run = load_run(report_dir)
    return write_page(report_dir, render(run_view(run.summary, run.tests)))


__all__ = ["build"]
