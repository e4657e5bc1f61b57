"""The report page of a real run: ``python -m harness run`` of one chaos test (a master
killed under load) ends by naming ``index.html``, which shows that test's timeline with
the kill as a band and the failover phases as markers, and opens offline: in headless
Chromium (Debian's, driven by selenium) it draws without a console error or a request
outside the report directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox import Sandbox, outcome

from harness.report import safe_name

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH"),
    # one worker under xdist: the module's one real run (a failover under load) serves
    # both tests, instead of running once in every worker that gets one of them
    pytest.mark.xdist_group("html_report_real"),
]

TIMEOUT = 120  # one failover under load: about 10 s
TEST = "suites/chaos/test_consistency.py::test_kill_master_under_load"


@pytest.fixture(scope="module")
def real_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    """One run for every test of this module (a failover takes a while)."""
    box = Sandbox.create(tmp_path_factory.mktemp("page"))
    argv = ["-m", "harness", "run", "--suite", "chaos", "--report-dir", "out"]
    try:
        yield (
            box.run([*argv, "--", "-k", "test_kill_master_under_load"], timeout=TIMEOUT),
            box.dir / "out",
        )
    finally:
        box.kill_leftovers()


def test_page_of_a_killed_master(
    real_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    res, out = real_run
    assert res.returncode == 0, outcome(res)
    page = out / "index.html"
    assert res.stdout.rstrip().splitlines()[-1] == f"report: {page}", outcome(res)
    html = page.read_text()
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # the library, once, beside it
    assert len(html) < 1_000_000, len(html)  # one test's page: data bucketed
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests"][0]["nodeid"] == TEST and summary["tests"][0]["outcome"] == "passed"
    for text in (TEST, summary["command"], f"seed</th><td>{summary['seed']}", "Failover phases"):
        assert text in html, text

    (fig_json,) = re.findall(r'<script type="application/json" id="fig-[^"]+">(.*?)</script>', html)
    fig = json.loads(fig_json)
    traces = {t["name"]: t for t in fig["data"]}
    assert sum(traces["ok"]["y"]) > 500 and "fail" in traces and "p99" in traces
    bands = [s for s in fig["layout"]["shapes"] if s["type"] == "rect"]
    assert len(bands) == 1 and bands[0]["label"]["text"].startswith("kill 127.0.0.1:")
    phases = traces["failover phases"]["text"]
    assert phases[0].startswith("fault: kill") and len(phases) == 5, phases  # every phase seen
    promoted = next(p for p in phases if p.startswith("promoted +"))
    metrics = summary["tests"][0]["metrics"]
    shown = float(promoted.removeprefix("promoted +").removesuffix(" ms"))
    assert abs(shown - metrics["promoted_ms"]) <= 1, (promoted, metrics)  # the checker's figure

    art = f"artifacts/{safe_name(TEST)}"
    assert f'href="{art}/history.jsonl"' in html
    logs = sorted((out / art / "logs").glob("*.log"))
    assert len(logs) == 6 and all(f'href="{art}/logs/{p.name}"' in html for p in logs)


BROWSER = ("/usr/bin/chromium", "/usr/bin/chromedriver")


@pytest.mark.skipif(
    not all(Path(p).exists() for p in BROWSER), reason="Debian's chromium and chromium-driver"
)
def test_page_draws_in_a_browser_offline(
    real_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    res, out = real_run
    assert res.returncode == 0, outcome(res)
    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2400"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(BROWSER[1]), options=opts)
    try:
        driver.get((out / "index.html").as_uri())
        driver.execute_script("document.querySelector('.plot').scrollIntoView()")
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.querySelectorAll('.plot .main-svg').length")
        )
        # zoom to 20 ms around the kill, as a drag would: every row follows the range
        fault = driver.execute_script(
            "var d = document.querySelector('.plot');"
            "var s = d.layout.shapes.find(function (s) { return s.type === 'rect'; });"
            "Plotly.relayout(d, {'xaxis.range': [s.x0 - 0.01, s.x0 + 0.01]}); return s.x0;"
        )
        ranges = driver.execute_script(
            "var l = document.querySelector('.plot')._fullLayout;"
            "return [l.xaxis.range, l.xaxis4.range];"
        )
        assert ranges[0] == pytest.approx([fault - 0.01, fault + 0.01])
        assert ranges[1] == pytest.approx(ranges[0])
        driver.save_screenshot(str(out / "screenshot.png"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    finally:
        driver.quit()
    assert not errors, errors
    urls = {
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    }
    assert urls == {(out / "index.html").as_uri(), (out / "plotly.min.js").as_uri()}, urls
    assert (out / "screenshot.png").stat().st_size > 50_000
    keep = os.environ.get("HARNESS_ARTIFACTS")  # CI keeps it beside its reports
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "screenshot.png", Path(keep) / "report-screenshot.png")
