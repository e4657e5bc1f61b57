"""A test's timeline as one Plotly figure: rows share the time axis, so zooming into a
failover (drag a box, double-click to reset) zooms every row at once.

Rows: client ops per bucket (ok / fail / info, stacked), latency (p50, p99), write
outages per shard, and the cluster's events with the failover phases. Fault windows
are labelled bands across all rows; phases are dashed lines.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.htmlreport.model import TestView

COLORS = {"ok": "#2ca02c", "fail": "#d62728", "info": "#ff7f0e"}
BAND = "rgba(214, 39, 40, 0.12)"
OPEN_BAND = "rgba(214, 39, 40, 0.25)"


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
