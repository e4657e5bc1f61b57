"""The progress hub (harness.progress) and the plugin's pure parts: counts, rate
limiting, plain lines, the JSON lines of xdist workers, -q."""

from __future__ import annotations

from pathlib import Path

from harness.history import Op
from harness.plugin.progress import Tail, from_json, to_json, wanted
from harness.progress import Counts, Hub, RateLimit, Update, plain_line, step_text


class _History:
    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, outcome: str) -> None:
        op = Op(len(self.ops), 0, "add", "k", 0, 1, 1, 2)
        op.outcome = outcome  # type: ignore[assignment]
        self.ops.append(op)


def test_hub_sends_phases_with_counts_of_the_tracked_workloads() -> None:
    hub, seen = Hub(), []
    unsubscribe = hub.subscribe(seen.append)
    hub.begin("suites/chaos/test_x.py::test_y", seed=7)
    h = _History()
    hub.track(h)
    for outcome in ("ok", "ok", "fail", "info"):
        h.add(outcome)
    hub.phase("fault injected: kill 127.0.0.1:1")
    assert seen[0].kind == "begin" and seen[0].counts is None
    last = seen[-1]
    assert (last.test, last.seed) == ("suites/chaos/test_x.py::test_y", 7)
    assert last.phase == "fault injected: kill 127.0.0.1:1"
    assert last.counts == Counts(2, 1, 1) and last.counts.total == 4
    h.add("ok")
    assert hub.snapshot().counts == Counts(3, 1, 1)  # read incrementally, not recounted
    hub.end("passed")
    assert seen[-1].kind == "end" and seen[-1].phase == "passed"
    assert hub.snapshot().test is None  # between tests
    unsubscribe()
    hub.phase("unheard")
    assert seen[-1].phase == "passed"


def test_timeline_steps_as_phases() -> None:
    assert step_text("kill", "127.0.0.1:1", ahead=True) == "fault injected: kill 127.0.0.1:1"
    assert (
        step_text("migrate", "n0", "slot 5 to n3", ahead=True)
        == "operation: migrate n0 slot 5 to n3"
    )
    assert step_text("promoted", "127.0.0.1:2", "812 ms") == "failover: promoted 127.0.0.1:2 812 ms"
    assert step_text("start", "127.0.0.1:1") == "healing: start 127.0.0.1:1"
    assert step_text("ready", "cluster", "900 ms") == "cluster ready (900 ms)"
    assert step_text("manual-failover", "127.0.0.1:2") == "manual-failover 127.0.0.1:2"


def test_plain_line_is_one_timestamped_line_without_cursor_codes() -> None:
    u = Update("suites/chaos/test_x.py::test_y", "load running", 42, Counts(5, 1, 0), 100.0, 172.0)
    line = plain_line(u, "gw1")
    assert "\x1b" not in line and "\n" not in line
    assert line.endswith(
        "[gw1] test_x.py::test_y 1:12 load running | ops 6 (ok 5, fail 1, info 0) | seed 42"
    )


def test_rate_limit_passes_phases_and_holds_back_repeated_counts() -> None:
    limit = RateLimit(every_s=5)

    def ops(at: float, ok: int, source: str = "a") -> bool:
        return limit.allow(Update("t", "p", counts=Counts(ok), at=at, kind="ops"), source)

    assert limit.allow(Update("t", "p", at=0.0), "a")  # a phase: always
    assert not ops(1.0, 10)  # too soon after the last line
    assert ops(6.0, 10)
    assert not ops(12.0, 10)  # nothing moved
    assert ops(12.0, 11, "b")  # per source
    assert limit.allow(Update("t", "q", at=12.5), "a")
    assert not limit.allow(Update("t", "p", at=30.0, kind="ops"), "a")  # no counts at all


def test_quiet_and_the_option() -> None:
    assert wanted("auto", 0) and wanted("auto", 1) and not wanted("auto", -1)
    assert wanted("on", -1) and not wanted("off", 2) and wanted(None, 0)


def test_worker_lines_round_trip_and_a_partial_line_waits(tmp_path: Path) -> None:
    u = Update("t::x", "healing", 3, Counts(1, 2, 3), 1.0, 2.0, "phase")
    assert from_json(to_json(u)) == u
    tail = Tail(tmp_path)
    f = tmp_path / "gw0.jsonl"
    f.write_text(to_json(u) + "\n" + to_json(u)[:10])
    assert tail.read() == [("gw0", u)]
    with f.open("a") as out:
        out.write(to_json(u)[10:] + "\n")
    assert tail.read() == [("gw0", u)]
    assert tail.read() == []
