"""A test's timeline as one Plotly figure: rows share the time axis, so zooming into a
failover (drag a box, double-click to reset) zooms every row at once.

Rows: client ops per bucket (ok / fail / info, stacked), latency (p50, p99), write
outages per shard, and the cluster's events with the failover phases. Fault windows
are labelled bands across all rows; phases are dashed lines.

An upgrade rehearsal's figure (:func:`upgrade_timeline`) is a Gantt of its steps with a
marker for the checks made after each.
"""

from __future__ import annotations

import html
import textwrap
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.htmlreport.model import TestView
from harness.htmlreport.upgrades import TOP_ERRORS, RehearsalView, StepRow

COLORS = {"ok": "#2ca02c", "fail": "#d62728", "info": "#ff7f0e"}
BAND = "rgba(214, 39, 40, 0.12)"
OPEN_BAND = "rgba(214, 39, 40, 0.25)"
STEP_COLORS = {"ok": COLORS["ok"], "failed": COLORS["fail"], "skipped": "#9e9e9e"}
CHECK_COLORS = {"ok": COLORS["ok"], "fail": COLORS["fail"], "unknown": "#9e9e9e"}


def timeline(view: TestView) -> go.Figure:
    """The figure of ``view`` (a test without a workload: the events row only)."""
    b = view.buckets
    titles = ["cluster events and failover phases"]
    if b is not None:
        titles = [
            f"client ops per {b.width_ms} ms (by invocation)",
            "latency (ms)",
            "write outages per shard",
            *titles,
        ]
    rows = len(titles)
    heights = [0.3, 0.25, 0.15, 0.3] if rows == 4 else [1.0]
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=titles,
        row_heights=heights,
    )
    if b is not None:
        x0, dx = b.width_ms / 2000, b.width_ms / 1000
        for name, counts in (("ok", b.ok), ("fail", b.fail), ("info", b.info)):
            fig.add_trace(
                go.Bar(name=name, x0=x0, dx=dx, y=counts, marker_color=COLORS[name]), row=1, col=1
            )
        for name, lat, dash in (("p50", b.p50_ms, "solid"), ("p99", b.p99_ms, "dot")):
            fig.add_trace(
                go.Scatter(name=name, x0=x0, dx=dx, y=lat, mode="lines", line={"dash": dash}),
                row=2,
                col=1,
            )
        for shard in view.shards:
            xs: list[float | None] = []
            for start, end, _ in shard.outages:
                xs += [start, end, None]
            fig.add_trace(
                go.Scatter(
                    name=shard.shard,
                    x=xs,
                    y=[shard.shard if x is not None else None for x in xs],
                    mode="lines",
                    line={"width": 10, "color": COLORS["fail"]},
                    showlegend=False,
                    hovertemplate="%{y}: refused writes at %{x:.3f} s<extra></extra>",
                ),
                row=3,
                col=1,
            )
    fig.add_trace(
        go.Scatter(
            name="events",
            x=[e.t_s for e in view.events],
            y=[e.action for e in view.events],
            text=[f"{e.node} {e.detail}".strip() for e in view.events],
            mode="markers",
            marker={"symbol": "diamond", "size": 9, "color": "#1f77b4"},
            hovertemplate="%{y} %{text} at %{x:.3f} s<extra></extra>",
            showlegend=False,
        ),
        row=rows,
        col=1,
    )
    if view.markers:
        fig.add_trace(
            go.Scatter(
                name="failover phases",
                x=[m.t_s for m in view.markers],
                y=["failover phases"] * len(view.markers),
                text=[m.label for m in view.markers],
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 14, "color": "#9467bd"},
                hovertemplate="%{text} (at %{x:.3f} s)<extra></extra>",
                showlegend=False,
            ),
            row=rows,
            col=1,
        )
    # one shape per band or phase over all rows (the x axes are matched), set at once:
    # adding shapes one by one re-validates all of them each time
    shapes: list[dict[str, Any]] = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": band.start_s,
            "x1": band.end_s,
            "y0": 0,
            "y1": 1,
            "fillcolor": BAND if band.closed else OPEN_BAND,
            "line": {"width": 0},
            "layer": "below",
            "label": {"text": band.label, "textposition": "top left", "font": {"size": 10}},
        }
        for band in view.bands
    ]
    shapes += [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": m.t_s,
            "x1": m.t_s,
            "y0": 0,
            "y1": 1,
            "line": {"dash": "dash", "width": 1, "color": "#9467bd"},
        }
        for m in view.markers
    ]
    fig.update_layout(
        shapes=shapes,
        barmode="stack",
        bargap=0,
        height=760 if rows == 4 else 320,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        template="simple_white",
        hovermode="closest",
        legend={"orientation": "h", "y": 1.06},
    )
    fig.update_xaxes(title_text="s since the test's first event", row=rows, col=1)
    fig.update_xaxes(showgrid=True)
    return fig


def timeline_json(view: TestView) -> str:
    """The figure as JSON ``{"data", "layout"}``, what ``Plotly.newPlot`` takes."""
    text: str = timeline(view).to_json()
    return text


def upgrade_timeline(view: RehearsalView) -> go.Figure:
    """One bar per step, from its start for its duration (s since the rehearsal began),
    coloured by outcome; at its end a marker for its checks (a red cross: one failed).
    Skipped steps never ran: a grey cross where the rehearsal stopped. Hover: what the
    step did or why it failed, the checks, unavailable ms per shard, client errors."""
    fig = go.Figure()
    ran = [s for s in view.steps if s.status != "skipped"]
    for status in dict.fromkeys(s.status for s in ran):
        steps = [s for s in ran if s.status == status]
        fig.add_trace(
            go.Bar(
                name=status,
                orientation="h",
                y=[s.label for s in steps],
                base=[s.start_s for s in steps],
                x=[s.duration_ms / 1000 for s in steps],
                marker_color=STEP_COLORS.get(status, COLORS["info"]),
                hovertext=[step_hover(s) for s in steps],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    skipped = [s for s in view.steps if s.status == "skipped"]
    if skipped:
        fig.add_trace(
            go.Scatter(
                name="skipped",
                y=[s.label for s in skipped],
                x=[s.start_s for s in skipped],
                mode="markers",
                marker={"symbol": "x-thin-open", "size": 10, "color": STEP_COLORS["skipped"]},
                hovertext=[step_hover(s) for s in skipped],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    checked = [s for s in ran if s.checks]
    if checked:
        worst = [_worst(s) for s in checked]
        fig.add_trace(
            go.Scatter(
                name="checks",
                y=[s.label for s in checked],
                x=[s.start_s + s.duration_ms / 1000 for s in checked],
                mode="markers",
                marker={
                    "symbol": ["x" if w == "fail" else "circle" for w in worst],
                    "size": 9,
                    "color": [CHECK_COLORS.get(w, COLORS["info"]) for w in worst],
                    "line": {"width": 1, "color": "#333"},
                },
                hovertext=[checks_hover(s) for s in checked],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    labels = [s.label for s in view.steps]
    fig.update_layout(
        barmode="overlay",
        height=max(220, 90 + 26 * len(labels)),
        margin={"l": 20, "r": 20, "t": 30, "b": 40},
        template="simple_white",
        hovermode="closest",
        legend={"orientation": "h", "y": 1.08},
    )
    fig.update_yaxes(
        categoryorder="array", categoryarray=labels, autorange="reversed", automargin=True
    )
    fig.update_xaxes(title_text="s since the rehearsal began", showgrid=True, rangemode="tozero")
    return fig


def _worst(s: StepRow) -> str:
    """fail when one failed; else ok when one held (a check that cannot be asked here,
    ``unknown``, is no warning sign)."""
    statuses = {c.status for c in s.checks.values()}
    return next((w for w in ("fail", "ok") if w in statuses), "unknown")


def _lines(text: str, width: int = 100, limit: int = 6) -> list[str]:
    """Hover text: escaped (Plotly reads tags in it), wrapped, cut."""
    out = textwrap.wrap(text, width) or [""]
    if len(out) > limit:
        out = [*out[:limit], "…"]
    return [html.escape(line, quote=False) for line in out]


def step_hover(s: StepRow) -> str:
    head = f"<b>{html.escape(s.label, quote=False)}</b>"
    if s.shard is not None:
        head += f" (shard {s.shard})"
    lines = [head]
    if s.detail:
        lines += _lines(s.detail)
    if s.status == "skipped":
        return "<br>".join([*lines, "skipped: an earlier step failed"])
    lines.append(f"{s.status}, {s.duration_ms:.0f} ms")
    if s.error:
        lines += _lines("error: " + s.error)
    elif s.result:
        lines += _lines(s.result)
    bad = s.failed_checks()
    if bad:
        lines += _lines("checks failed: " + ", ".join(c.name for c in bad))
    for shard, ms in s.unavailable_ms.items():
        lines.append(html.escape(f"unavailable {ms:.0f} ms: {shard}", quote=False))
    for err, n in s.client_errors[:TOP_ERRORS]:
        lines += _lines(f"{n}× {err}")
    return "<br>".join(lines)


def checks_hover(s: StepRow) -> str:
    lines = [f"<b>checks after {html.escape(s.label, quote=False)}</b>"]
    for c in s.checks.values():
        lines += _lines(f"{c.name}: {c.status} ({c.detail})", limit=3)
    return "<br>".join(lines)


def upgrade_timeline_json(view: RehearsalView) -> str:
    text: str = upgrade_timeline(view).to_json()
    return text
