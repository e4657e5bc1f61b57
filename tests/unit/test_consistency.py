"""harness.checkers: the history checkers on small hand-built histories (times in ms
on a made-up monotonic clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.checkers import (
    OPEN_END,
    Window,
    availability,
    check_counter,
    check_register,
    check_set,
    failover_phases,
    fault_windows,
    summarise,
)
from harness.history import Event, History, Op, Outcome

MS = 1_000_000
T0 = 5_000 * MS  # monotonic clocks do not start at 0


def ns(ms: float) -> int:
    return T0 + round(ms * MS)


class Ops:
    """Builds ops with increasing ids; times in ms after T0."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(
        self,
        kind: str,
        key: str,
        value: Any,
        inv: float,
        done: float,
        outcome: Outcome = "ok",
        slot: int = 0,
    ) -> Op:
        o = Op(len(self.ops) + 1, 0, kind, key, slot, value, ns(inv), ns(done), outcome)
        self.ops.append(o)
        return o

    def add(self, key: str, value: int, inv: float, done: float, outcome: Outcome = "ok") -> Op:
        return self.op("add", key, value, inv, done, outcome)

    def final(self, key: str, value: Any, at: float = 10_000) -> Op:
        return self.op("final-read", key, value, at, at + 1)

    def history(self, *events: Event) -> History:
        return History(list(self.ops), list(events))


def ev(ms: float, action: str, node: str = "n1") -> Event:
    return Event(ns(ms), action, node)


# -- fault windows --------------------------------------------------------------------


def spans(windows: list[Window]) -> list[tuple[str, str, float, float | None]]:
    return [
        (w.action, w.node, (w.start_ns - T0) / MS, (w.end_ns - T0) / MS if w.closed else None)
        for w in windows
    ]


def test_windows_pair_each_fault_with_the_heal_of_its_node() -> None:
    events = [
        ev(100, "kill", "a"),
        ev(200, "kill", "b"),
        ev(250, "promoted", "r"),  # not a fault
        ev(300, "start", "a"),
        ev(400, "start", "b"),
    ]
    assert spans(fault_windows(events)) == [("kill", "a", 100, 300), ("kill", "b", 200, 400)]


def test_windows_nested_and_overlapping() -> None:
    events = [
        ev(100, "partition", "cluster"),
        ev(150, "pause", "a"),
        ev(200, "isolate", "b"),
        ev(250, "drop", "c,d"),
        ev(300, "resume", "b"),  # b is not paused: closes nothing
        ev(400, "heal", "cluster"),  # every network fault, on every node
        ev(500, "resume", "a"),
    ]
    assert spans(fault_windows(events)) == [
        ("partition", "cluster", 100, 400),
        ("pause", "a", 150, 500),
        ("isolate", "b", 200, 400),
        ("drop", "c,d", 250, 400),
    ]


def test_windows_repeated_fault_closed_by_one_heal_and_unsorted_input() -> None:
    events = [ev(300, "start", "a"), ev(100, "kill", "a"), ev(200, "kill", "a")]
    assert spans(fault_windows(events)) == [("kill", "a", 100, 300), ("kill", "a", 200, 300)]


def test_windows_toxics_and_process_heals() -> None:
    events = [
        ev(100, "latency", "p1,p2"),
        ev(150, "pause", "a"),
        ev(160, "kill", "a"),  # killing a paused node; start ends both
        ev(200, "latency-healed", "p1,p2"),
        ev(300, "start", "a"),
        ev(400, "rejoin", "a"),  # nothing open to close: ignored
    ]
    assert spans(fault_windows(events)) == [
        ("latency", "p1,p2", 100, 200),
        ("pause", "a", 150, 300),
        ("kill", "a", 160, 300),
    ]


def test_windows_never_healed_extend_to_the_end() -> None:
    events = [ev(100, "kill", "a"), ev(200, "pause", "b"), ev(300, "resume", "b")]
    (kill, pause) = fault_windows(events)
    assert not kill.closed and kill.end_ns == OPEN_END and pause.closed
    (kill, _) = fault_windows(events, end_ns=ns(900))
    assert kill.end_ns == ns(900) and not kill.closed
    assert "never healed" in kill.describe()
    assert fault_windows([]) == []


# -- set ------------------------------------------------------------------------------


def test_set_fault_free_history_loses_nothing() -> None:
    b = Ops()
    for i in range(10):
        b.add(f"k{i % 2}", i, i * 10, i * 10 + 1)
    b.final("k0", [0, 2, 4, 6, 8])
    b.final("k1", [1, 3, 5, 7, 9])
    r = check_set(b.history(ev(0, "ready", "cluster")))
    assert r.ok and r.lost_count == 0 and r.acknowledged == 10
    assert r.windows == () and r.origin == "first op"
    assert "no acknowledged add lost" in r.describe()


def test_set_losses_are_classified_by_overlap_with_the_windows() -> None:
    b = Ops()
    before = b.add("k", 1, 0, 50)
    b.add("k", 2, 60, 70)  # kept
    in_kill = b.add("k", 3, 90, 150)  # invoked before the kill, acked during it
    between = b.add("k", 4, 300, 310)
    in_pause = b.add("k", 5, 400, 400)  # acked at the very instant of the pause
    across = b.add("k", 6, 490, 505)  # sent to the paused node, answered on resume
    at_heal = b.add("k", 7, 500, 510)  # sent at the instant of the resume: healed
    b.final("k", [2])
    h = b.history(
        ev(100, "kill", "a"), ev(200, "start", "a"), ev(400, "pause", "b"), ev(500, "resume", "b")
    )
    r = check_set(h)
    assert not r.ok and r.lost_count == 6
    assert {c: s.count for c, s in r.lost.items()} == {
        "before-faults": 1,
        "in-window": 3,
        "after-heal": 2,
    }
    assert [e.op_id for e in r.lost["before-faults"].examples] == [before.id]
    assert [e.op_id for e in r.lost["in-window"].examples] == [in_kill.id, in_pause.id, across.id]
    assert [e.op_id for e in r.lost["after-heal"].examples] == [between.id, at_heal.id]
    assert r.origin == "first fault" and r.origin_ns == ns(100)
    assert r.lost["before-faults"].examples[0].t_ms == -50
    assert (r.lost["in-window"].first_ms, r.lost["in-window"].last_ms) == (50, 405)
    text = r.describe()
    assert "LOST 6" in text and "op 3 key 'k' value 3 sent -10.0 acked +50.0 ms" in text
    assert "kill a +0.0 ms → +100.0 ms" in text


def test_set_loss_without_faults_is_before_faults() -> None:
    b = Ops()
    b.add("k", 1, 10, 11)
    b.add("k", 2, 20, 21)
    b.final("k", [1])
    r = check_set(b.history())
    assert r.lost["before-faults"].count == 1 and r.origin == "first op"
    assert r.lost["before-faults"].examples[0].t_ms == 11


def test_set_loss_in_a_window_never_healed() -> None:
    b = Ops()
    b.add("k", 1, 200, 210)
    b.final("k", [], at=300)
    b.add("k", 2, 300, 400)  # the history's last instant: the window is still open
    r = check_set(b.history(ev(100, "isolate", "a")))
    assert r.lost["in-window"].count == 2
    assert not r.windows[0].closed and r.windows[0].end_ns == ns(400)


def test_set_unknown_adds_recovered_or_not_are_never_losses() -> None:
    b = Ops()
    b.add("k", 1, 0, 500, "info")  # applied after all
    b.add("k", 2, 0, 500, "info")  # not applied
    b.add("k", 3, 0, 1)
    b.final("k", [1, 3])
    r = check_set(b.history())
    assert r.ok and r.unknown_writes == 2 and r.recovered == 1 and r.lost_count == 0
    assert summarise(r)["recovered_unknown"] == 1


def test_set_unexpected_values_and_failed_adds_present() -> None:
    b = Ops()
    b.add("k", 1, 0, 1)
    failed = b.add("k", 2, 0, 1, "fail")  # CLUSTERDOWN: must not be there
    b.add("j", 3, 0, 1, "fail")  # and is not
    b.add("j", 4, 0, 1)
    b.final("k", [1, 2, 99])
    b.final("j", [4, 1])  # 1 was added to k, not to j
    r = check_set(b.history())
    assert not r.ok and r.lost_count == 0
    assert r.unexpected_count == 2 and set(r.unexpected) == {("k", 99), ("j", 1)}
    assert r.failed_present_count == 1 and r.failed_present[0] == (failed.id, "k", 2)
    text = r.describe()
    assert "UNEXPECTED 2" in text and "'k':99" in text and "FAILED BUT PRESENT 1" in text


def test_set_keys_never_read_are_reported_not_lost() -> None:
    b = Ops()
    b.add("k", 1, 0, 1)
    b.add("gone", 2, 0, 1)
    b.add("gone", 3, 0, 1, "info")
    b.op("final-read", "gone", [], 10, 11, "info")  # the final read itself failed
    b.final("k", [1])
    r = check_set(b.history())
    assert r.ok and r.never_read == ("gone",) and r.never_read_acknowledged == 1
    assert "never read" in r.describe() and "'gone'" in r.describe()


def test_set_uses_the_last_final_read_and_ignores_counter_reads() -> None:
    b = Ops()
    b.add("k", 1, 0, 1)
    b.final("k", [], at=100)
    b.final("k", [1], at=200)
    b.final("counter", 7)  # a counter's final read in the same history
    r = check_set(b.history())
    assert r.ok and r.unexpected_count == 0 and r.never_read == ()


def test_set_examples_are_bounded() -> None:
    b = Ops()
    for i in range(50):
        b.add("k", i, i, i + 1)
    b.final("k", [])
    r = check_set(b.history(), examples=3)
    s = r.lost["before-faults"]
    assert s.count == 50 and len(s.examples) == 3 and s.last_ms == 50


# -- counter --------------------------------------------------------------------------


def counter_history(final: int | None, *outcomes: Outcome) -> History:
    b = Ops()
    for i, outcome in enumerate(outcomes):
        b.op("incr", "c", 1, i, i + 1, outcome)
    b.final("c", final)
    return b.history()


@pytest.mark.parametrize("final", [2, 3, 4])
def test_counter_within_bounds(final: int) -> None:
    r = check_counter(counter_history(final, "ok", "ok", "info", "info", "fail"))
    assert r.ok and r.acknowledged == 2 and r.unknown_writes == 2 and r.increments == 5


@pytest.mark.parametrize(("final", "side"), [(1, "below"), (5, "above"), (None, "below")])
def test_counter_out_of_bounds(final: int | None, side: str) -> None:
    r = check_counter(counter_history(final, "ok", "ok", "info", "info", "fail"))
    assert not r.ok
    (v,) = r.violations
    assert (v.key, v.final, v.lower, v.upper) == ("c", final or 0, 2, 4)
    assert f"key 'c': final value {final or 0} is {side} the bounds [2, 4]" in r.describe()
    assert summarise(counter=r) == {"counter_violations": 1, "unknown_writes": 2}


def test_counter_never_read_and_set_reads_ignored() -> None:
    b = Ops()
    b.op("incr", "c", 1, 0, 1)
    b.final("s", [1, 2])  # a set's final read in the same history
    r = check_counter(b.history())
    assert r.ok and r.never_read == ("c",)


# -- register -------------------------------------------------------------------------


def test_register_stale_read_detected() -> None:
    b = Ops()
    b.op("write", "r", 1, 0, 1)
    w2 = b.op("write", "r", 2, 2, 3)
    stale = b.op("read", "r", 1, 4, 5)
    b.op("read", "r", 2, 6, 7)
    r = check_register(b.history())
    assert not r.ok and r.stale_count == 1
    (s,) = r.stale
    assert (s.op_id, s.key, s.read, s.newest, s.newest_write_id) == (stale.id, "r", 1, 2, w2.id)
    assert s.behind_ms == 1
    assert "read 1, but version 2" in r.describe()
    assert summarise(register=r)["stale_reads"] == 1


def test_register_concurrent_read_is_not_stale() -> None:
    b = Ops()
    b.op("write", "r", 1, 0, 1)
    b.op("write", "r", 2, 2, 10)  # in flight from 2 to 10
    b.op("read", "r", 1, 3, 4)  # concurrent: either version is fine
    b.op("read", "r", 2, 5, 6)  # sees the write before it is acknowledged: fine
    b.op("read", "r", 1, 10, 11)  # invoked at the very instant of the ack: concurrent
    r = check_register(b.history())
    assert r.ok and r.stale_count == 0 and r.reads == 3


def test_register_empty_reads_and_out_of_order_completions() -> None:
    b = Ops()
    b.op("read", "r", None, 0, 1)  # nothing written yet
    b.op("write", "r", 2, 1, 20)  # slow
    b.op("write", "r", 3, 2, 5)  # fast: acked first
    b.op("read", "r", 2, 6, 7)  # 3 was acked before: stale
    b.op("read", "r", None, 8, 9)  # stale too (the key vanished)
    b.op("read", "r", 3, 21, 22)
    b.op("read", "x", 1, 0, 1, "fail")  # not ok: not a read result
    r = check_register(b.history())
    assert r.stale_count == 2 and {s.read for s in r.stale} == {2, None}
    assert all(s.newest == 3 for s in r.stale)


def test_register_unexpected_and_failed_write_reads() -> None:
    b = Ops()
    b.op("write", "r", 1, 0, 1)
    b.op("write", "r", 2, 2, 3, "fail")
    b.op("write", "r", 3, 4, 500, "info")
    b.op("read", "r", 99, 5, 6)
    b.op("read", "r", 2, 5, 6)
    b.op("read", "r", 3, 7, 8)  # an unknown write that happened: fine
    r = check_register(b.history())
    assert r.stale_count == 0 and r.unknown_writes == 1
    assert r.unexpected_count == 1 and r.unexpected[0][1:] == ("r", 99)
    assert r.failed_read_count == 1 and r.failed_read[0][1:] == ("r", 2)
    assert not r.ok and "UNEXPECTED 1" in r.describe() and "FAILED BUT READ 1" in r.describe()


# -- availability ---------------------------------------------------------------------


def shard(slot: int) -> str:
    return "a" if slot < 100 else "b"


def test_availability_windows_per_shard() -> None:
    b = Ops()
    b.op("add", "x", 1, 0, 1, slot=5)
    b.op("add", "x", 2, 10, 11, "fail", slot=5)  # opens at invocation
    b.op("add", "x", 3, 12, 512, "info", slot=6)  # a timeout, inside the window
    b.op("read", "x", None, 13, 14, "fail", slot=5)  # reads do not count
    b.op("add", "x", 4, 20, 21, slot=7)  # closes it
    b.op("add", "x", 5, 30, 31, "fail", slot=5)
    b.op("add", "x", 6, 32, 40, slot=5)  # invoked before, completed after: closes
    b.op("add", "y", 7, 0, 1, slot=200)
    b.op("add", "y", 8, 50, 51, slot=300)
    u = availability(b.history(), shard)
    assert set(u) == {"a", "b"}
    a = u["a"]
    assert [(w.start_ns, w.end_ns, w.failed_writes) for w in a.windows] == [
        (ns(10), ns(21), 2),
        (ns(30), ns(40), 1),
    ]
    assert a.total_ms == 21 and a.ok and a.writes == 6 and a.failed_writes == 3
    assert u["b"].windows == () and u["b"].total_ms == 0
    assert "shard a: 3 of 6 writes" in a.describe(T0) and "+10.0 ms → +21.0 ms" in a.describe(T0)
    assert summarise(unavailable=u) == {"unavailable_ms": 21.0}


def test_availability_window_never_closed() -> None:
    b = Ops()
    b.op("incr", "c", 1, 0, 1, slot=1)
    b.op("incr", "c", 1, 10, 510, "info", slot=1)
    b.op("write", "c", 1, 20, 21, "fail", slot=1)
    u = availability(b.history(), shard)["a"]
    (w,) = u.windows
    assert not w.closed and w.failed_writes == 2 and (w.start_ns, w.end_ns) == (ns(10), ns(510))
    assert not u.ok and "never recovered" in u.describe(T0)


# -- failover phases ------------------------------------------------------------------


def failover_ops() -> Ops:
    b = Ops()
    b.op("add", "k", 1, 999, 1000.5, slot=5)  # in flight at the kill: old master
    b.op("add", "k", 2, 1001, 1002, slot=5)  # cut-off master acks before clients notice
    b.op("add", "o", 3, 1001, 1001.5, "fail", slot=900)  # other slots: ignored
    b.op("add", "k", 4, 1003, 1005, "info", slot=5)  # first error: +5 ms
    b.op("read", "k", None, 1002, 1006, "fail", slot=6)
    b.op("add", "k", 5, 1800, 2600, slot=6)  # first ok write after the error: +1600 ms
    b.op("add", "k", 6, 2700, 2701, slot=5)
    return b


def test_failover_phases_all_observed() -> None:
    b = failover_ops()
    events = [
        ev(500, "fail-flag", "x"),  # before the fault: ignored
        ev(1000, "kill", "m"),
        ev(2000, "fail-flag", "m"),
        ev(2500, "promoted", "r"),
        ev(2600, "promoted", "r2"),
    ]
    p = failover_phases(b.history(), events, ns(1000), {5, 6})
    assert (p.first_error_ms, p.fail_flag_ms, p.promoted_ms, p.first_ok_ms) == (
        5,
        1000,
        1500,
        1600,
    )
    assert p.ok and "replica promoted +1500.0 ms" in p.describe()
    assert p.as_metrics("failover_") == {
        "failover_first_error_ms": 5.0,
        "failover_fail_flag_ms": 1000.0,
        "failover_promoted_ms": 1500.0,
        "failover_first_ok_ms": 1600.0,
    }


def test_failover_phases_without_events_or_errors() -> None:
    b = failover_ops()
    p = failover_phases(b.history(), [], ns(1000), {5, 6})
    assert p.fail_flag_ms is None and p.promoted_ms is None and p.first_error_ms == 5
    assert "FAIL flag not observed" in p.describe()
    # no error on slot 7 at all: the first ok write after the fault counts
    c = Ops()
    c.op("add", "k", 1, 1001, 1002, slot=7)
    p = failover_phases(c.history(), [], ns(1000), {7})
    assert p.first_error_ms is None and p.first_ok_ms == 2 and p.ok


def test_failover_phases_never_recovered() -> None:
    b = Ops()
    b.op("add", "k", 1, 1001, 1002, "fail", slot=5)
    p = failover_phases(b.history(), [], ns(1000), frozenset({5}))
    assert p.first_ok_ms is None and not p.ok and p.as_metrics() == {"first_error_ms": 2.0}


# -- summary and files ----------------------------------------------------------------


def test_summarise_reports_only_what_ran() -> None:
    b = Ops()
    b.add("k", 1, 0, 1)
    b.add("k", 2, 0, 1, "info")
    b.add("k", 3, 150, 160)
    b.op("write", "r", 1, 0, 1, "info")
    b.final("k", [7])
    h = b.history(ev(100, "kill", "a"), ev(120, "start", "a"))
    m = summarise(check_set(h), register=check_register(h), unavailable={})
    assert m == {
        "lost_acked_writes": 2,
        "recovered_unknown": 0,
        "lost_before_faults": 1,
        "lost_in_window": 0,
        "lost_after_heal": 1,
        "failed_present": 0,
        "stale_reads": 0,
        "failed_read": 0,
        "unknown_writes": 2,
        "unexpected": 1,
        "unavailable_ms": 0,
    }
    assert summarise() == {}


def test_jsonl_round_trip(tmp_path: Path) -> None:
    b = Ops()
    b.add("k", 1, 0, 1)
    b.add("k", 2, 150, 160)
    b.add("k", 3, 2, 600, "info")
    b.op("read", "r", None, 3, 4)
    b.final("k", [1, 3])
    h = b.history(ev(100, "kill", "a"), ev(200, "start", "a"), ev(300, "partition", "cluster"))
    path = h.write_jsonl(tmp_path / "history.jsonl")
    back = History.read_jsonl(path)
    assert sorted(back.ops, key=lambda o: o.id) == h.ops and back.events == h.events
    before, after = check_set(h), check_set(back)
    assert after == before and after.lost_count == 1 and after.recovered == 1
    assert not after.windows[-1].closed
    assert fault_windows(back.events) == fault_windows(h.events)
