"""The page from its model: Jinja2 for the HTML, Plotly for the figures, and
``plotly.min.js`` written once next to ``index.html`` (the page opens from disk,
offline: no URL outside the report directory)."""

from __future__ import annotations

import contextlib
import os
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from harness.htmlreport.figures import timeline_json, upgrade_timeline_json
from harness.htmlreport.model import RunView, key_metrics
from harness.htmlreport.upgrades import all_views

PLOTLY_JS = "plotly.min.js"


def json_script(text: str) -> Markup:
    """JSON made safe inside ``<script type="application/json">``."""
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e"))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.htmlreport", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["json_script"] = json_script
    env.globals["key_metrics"] = key_metrics
    return env


def render(run: RunView) -> str:
    figures = {t.anchor: timeline_json(t) for t in run.tests if t.events or t.buckets}
    figures |= {u.anchor: upgrade_timeline_json(u) for u in all_views(run.upgrades) if u.steps}
    return environment().get_template("index.html.j2").render(run=run, figures=figures)


def write_page(report_dir: Path, html: str) -> Path:
    """``index.html`` (atomically) and, when missing or stale, ``plotly.min.js``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    js = get_plotlyjs()
    lib = report_dir / PLOTLY_JS
    if not lib.is_file() or lib.stat().st_size != len(js.encode()):
        _link_or_write(lib, js)
    return _atomic(report_dir / "index.html", html)


def _link_or_write(lib: Path, js: str) -> None:
    """A hard link to plotly's own copy when it is on the same file system (a soak's many
    run directories then cost no space), else a copy: either way a real file, which
    survives copying the report elsewhere."""
    src = Path(str(resources.files("plotly") / "package_data" / PLOTLY_JS))
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        if src.stat().st_size == len(js.encode()):
            tmp.unlink(missing_ok=True)
            os.link(src, tmp)
            tmp.replace(lib)
            return
    _atomic(lib, js)


def _atomic(path: Path, text: str) -> Path:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
