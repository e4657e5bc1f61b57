"""What a test run reports: node logs and cluster events of failed tests, failures that
are a known server bug rewritten to xfailed, and ``summary.json`` plus the terminal
metrics table at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from harness.cluster import Cluster
from harness.errors import NotSupportedError
from harness.htmlreport import build as build_page
from harness.plugin.advice import Gathered
from harness.plugin.collection import RULE_PROPERTY
from harness.plugin.state import STATE, HarnessState
from harness.plugin.workers import plain_nodeid
from harness.regressions.summary import runs_from, scenario_lines, scenario_table
from harness.report import (
    TestResult,
    build_summary,
    harness_version,
    metrics_from_properties,
    metrics_table,
    now_iso,
    replay_command,
    safe_name,
    write_summary,
)
from harness.upgrade.summary import rehearsal_lines, upgrades_from

#: the clusters a test started (``cluster_factory`` fills it): their logs go in its report
CLUSTERS = pytest.StashKey[list[Cluster]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    clusters = item.stash.get(CLUSTERS, [])
    foreign = any(not c.backend.owns_cluster for c in clusters)
    if foreign and report.failed and call.excinfo and call.excinfo.errisinstance(NotSupportedError):
        # a fault the harness cannot apply to a cluster it did not start (kill a node):
        # a skip with the reason, not a failure of the cluster. Elsewhere a test that
        # lacks its `requires` mark still fails, so the mark gets added.
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {call.excinfo.value}")
        return report
    regression = item.get_closest_marker("regression") is not None
    if report.failed and call.excinfo is not None and not regression:
        # (a regression scenario's failure is a surprise about its own bug: never folded)
        impl = item.config.stash[STATE].impl
        ref = None
        divergence = None
        if impl is not None:
            logs = "\n".join(n.log_text(3000) for c in clusters for n in c.nodes)
            ref = impl.profile.known_issue(str(call.excinfo.value), logs)
            divergence = impl.profile.divergence(plain_nodeid(item.nodeid))
        if ref is not None:  # the server's known bug, not a harness failure
            report.outcome = "skipped"
            report.wasxfail = f"known server issue {ref}"
        elif divergence is not None:  # a rule it breaks on purpose, as it documents
            report.outcome = "skipped"
            first = (str(call.excinfo.value).splitlines() or [""])[0][:200]
            report.wasxfail = f"documented divergence {divergence}: {first}"
    if report.failed and clusters:
        _attach_logs(report, item, clusters)
    return report


def _attach_logs(report: pytest.TestReport, item: pytest.Item, clusters: list[Cluster]) -> None:
    state = item.config.stash[STATE]
    logdir = state.report_dir / "logs" / safe_name(plain_nodeid(item.nodeid))
    for ci, c in enumerate(clusters):
        # the logs of someone else's servers are where their operators keep them
        for n in [*c.nodes, *c.retired] if c.backend.owns_cluster else ():
            # a short tail, so the end survives in truncated CI output; the whole log
            # is written next to the report
            text = n.log_text(3000)
            path = logdir / f"cluster{ci}-{n.name}-{n.port}.log"
            try:
                logdir.mkdir(parents=True, exist_ok=True)
                path.write_text(n.log_text(10_000_000))
                text += f"\n[whole log: {path}]"
            except OSError:
                pass
            report.sections.append((f"node {n.name} {n.addr} log (tail)", text))
        events = "\n".join(f"{e.t_ns} {e.action} {e.node} {e.detail}" for e in c.events)
        report.sections.append((f"cluster {ci} events", events))


class Reporter:
    """Collects outcomes and metrics of every test; writes summary.json and the report
    page (index.html, from summary.json and what each test left in artifacts/) at the
    end."""

    def __init__(self, state: HarnessState) -> None:
        self.state = state
        self.summary_path: Path | None = None
        self.page_path: Path | None = None
        self.page_error = ""
        self.t0 = time.monotonic()
        self.advisories = Gathered()
        self.upgrades: list[dict[str, Any]] = []  # rehearsals (harness.plugin.upgrade)
        self.regressions: list[dict[str, Any]] = []  # scenario runs (harness.plugin.regression)
        self.scenarios: list[dict[str, Any]] = []  # their tally, at the end

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = plain_nodeid(report.nodeid)  # without xdist's group suffix
        res = self.state.results.setdefault(nodeid, TestResult(nodeid))
        res.duration_s += report.duration
        res.metrics.update(metrics_from_properties(report.user_properties))
        for key, value in report.user_properties:
            if key == RULE_PROPERTY and res.rule is None:
                res.rule = json.loads(str(value))
        self.advisories.add(nodeid, report.user_properties)
        if report.when == "call":
            self.upgrades += [{"test": nodeid, **u} for u in upgrades_from(report.user_properties)]
            self.regressions += runs_from(report.user_properties)
            if hasattr(report, "wasxfail"):
                res.outcome = "xfailed" if report.skipped else "xpassed"
                res.message = str(report.wasxfail)
            else:
                res.outcome = report.outcome
                if report.skipped and isinstance(report.longrepr, tuple):
                    res.message = str(report.longrepr[2])
            if report.failed:
                res.message = _short_message(report)
        elif report.skipped and report.when == "setup":
            res.outcome = "skipped"
            res.message = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        elif report.failed:
            res.outcome = "error"
            res.message = _short_message(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        if hasattr(session.config, "workerinput") or not (state.used or state.report_dir_given):
            return
        meta: dict[str, Any] = {
            "implementation": state.implementation_meta(),
            "backend": state.backend,
            "nodes": state.nodes,
            "seed": state.seed,
            "workload_engine": state.workload_engine,
            "node_timeout_ms": state.node_timeout_ms,
            # the password is never written; "password" when one was given
            "auth": "password" if state.auth == "none" and state.password else state.auth,
            "tls": state.tls,
            "started": state.started,
            "finished": now_iso(),
            "duration_s": round(time.monotonic() - self.t0, 1),
            "exit_status": int(exitstatus),
            "command": replay_command(session.config.invocation_params.args, state.seed),
            "harness_version": harness_version(),
            "advisories": self.advisories.as_json(),  # advice about the clusters, not failures
        }
        if self.upgrades:
            meta["upgrades"] = self.upgrades
        if self.regressions:
            self.scenarios = scenario_table(self.regressions)
            meta["regressions"] = self.scenarios
            if any(r["surprise"] for r in self.scenarios) and exitstatus == 0:
                # k of n contradicts the profile (a racy bug never seen, no conclusive
                # run): each run alone passed, the scenario did not
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                meta["exit_status"] = int(session.exitstatus)
        notes = state.pool_notes + list(state.pool.replaced if state.pool else ())
        if notes:  # a shares_cluster test that changed its cluster: a mark to remove
            meta["shared_cluster_replaced"] = notes
        self.summary_path = write_summary(
            state.report_dir, build_summary(meta, state.results.values())
        )
        try:  # the page is a view of the files: it never fails the run
            self.page_path = build_page(state.report_dir)
        except Exception as exc:  # a bug in the page must not hide the run: said in one line
            self.page_error = f"{type(exc).__name__}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = metrics_table(self.state.results.values())
        if lines:
            terminalreporter.section("redis-cluster-harness metrics")
            for line in lines:
                terminalreporter.write_line(line)
        advised = self.advisories.lines()
        if advised:
            terminalreporter.section("redis-cluster-harness advisories")
            for line in advised:
                terminalreporter.write_line(line)
        if self.upgrades:
            terminalreporter.section("redis-cluster-harness upgrade rehearsals")
            for u in self.upgrades:
                for line in rehearsal_lines(u):
                    terminalreporter.write_line(line)
        if self.scenarios:
            terminalreporter.section("redis-cluster-harness regression scenarios")
            for row in self.scenarios:
                for line in scenario_lines(row):
                    terminalreporter.write_line(line)
        if self.summary_path is not None:
            terminalreporter.write_line(
                f"redis-cluster-harness: summary written to {self.summary_path}"
            )
        if self.page_error:
            terminalreporter.write_line(f"redis-cluster-harness: no report page: {self.page_error}")
        if self.page_path is not None:
            terminalreporter.write_line(f"redis-cluster-harness: report page {self.page_path}")


def _short_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    msg = getattr(crash, "message", None) or str(report.longrepr)
    return msg.splitlines()[0][:300] if msg else ""
