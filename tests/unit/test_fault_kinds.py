"""Fault kinds are declared once, next to the code that injects them, and the checkers'
windows follow from those declarations; the one checker interface."""

from __future__ import annotations

import pytest

from harness import checkers
from harness.checkers import Compose, Result, SetChecker, check_safe, fault_windows
from harness.faults import kinds
from harness.history import Event, History, Op

MS = 1_000_000


def test_every_fault_module_declares_its_kinds() -> None:
    declared = kinds.all_kinds()
    for name in ("kill", "stop", "pause", "stall", "isolate", "partition", "drop", "latency"):
        assert name in declared, f"{name} not declared"
    assert kinds.closes("start") == {"kill", "stop", "pause", "stall"}
    assert kinds.closes("heal") == {"isolate", "partition", "drop"}
    assert kinds.closes("latency-healed") == {"latency"}
    assert not kinds.opens_window("promoted")  # a mark, not a fault


def test_a_kind_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        kinds.declare("kill", {"start"})


def test_windows_come_from_the_declarations() -> None:
    events = [
        Event(10 * MS, "stall", "n1"),
        Event(12 * MS, "promoted", "n2"),
        Event(30 * MS, "stall-healed", "n1"),
        Event(40 * MS, "partition", "cluster"),
        Event(50 * MS, "heal", "cluster"),
    ]
    got = [(w.action, w.start_ns // MS, w.end_ns // MS) for w in fault_windows(events)]
    assert got == [("stall", 10, 30), ("partition", 40, 50)]


def test_replication_grace_opens_only_graced_kinds_earlier() -> None:
    events = [Event(100 * MS, "kill", "n1"), Event(200 * MS, "start", "n1")]
    events += [Event(300 * MS, "latency", "p"), Event(400 * MS, "latency-healed", "p")]
    got = [(w.action, w.start_ns // MS) for w in fault_windows(events, grace_ns=50 * MS)]
    assert got == [("kill", 50), ("latency", 300)]


def _add(i: int, t_ms: int, outcome: str = "ok") -> Op:
    return Op(i, 0, "add", "k", 1, i, t_ms * MS, t_ms * MS + MS, outcome)  # type: ignore[arg-type]


def test_a_write_acked_just_before_a_kill_is_in_the_window_only_with_the_grace() -> None:
    ops = [_add(1, 95), Op(2, -1, "final-read", "k", 1, [], 500 * MS, 501 * MS, "ok")]
    h = History(ops, [Event(100 * MS, "kill", "n1"), Event(200 * MS, "start", "n1")])
    assert SetChecker(grace_ms=0).check(h).valid == "invalid"  # lost before any fault
    graced = SetChecker(grace_ms=50).check(h)
    assert graced.valid == "valid" and graced.figures["lost_in_window"] == 1
    strict = SetChecker(grace_ms=50, allow_in_window=False).check(h)
    assert strict.valid == "invalid"


class _Crashing:
    name = "crashing"

    def check(self, history: History) -> Result:
        raise ZeroDivisionError("bug")


def test_a_crashing_checker_answers_unknown_and_composition_merges_validity() -> None:
    h = History([_add(1, 1), Op(2, -1, "final-read", "k", 1, [1], 5 * MS, 6 * MS, "ok")])
    unknown = check_safe(_Crashing(), h)
    assert unknown.valid == "unknown" and "ZeroDivisionError: bug" in unknown.message
    both = Compose((SetChecker(), _Crashing())).check(h)
    assert both.valid == "unknown"
    assert both.detail["set"].valid == "valid"
    lost = History([_add(1, 1), Op(2, -1, "final-read", "k", 1, [], 5 * MS, 6 * MS, "ok")])
    assert Compose((SetChecker(), _Crashing())).check(lost).valid == "invalid"
    assert checkers.merge_valid([]) == "valid"
