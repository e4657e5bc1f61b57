"""The deadline arithmetic of hang protection, and the watchdog's interruption on a real
thread and signal (no servers: the states come from a function)."""

from __future__ import annotations

import threading
import time

import pytest

from harness import deadline as dl
from harness import wait
from harness.deadline import Deadline, DeadlineExceeded, Watchdog, last_lines
from harness.errors import NotReadyError


def test_base_and_grace_follow_the_node_timeout() -> None:
    assert dl.base_budget_s(2.0) == pytest.approx(30.0)  # the default node timeout
    assert dl.base_budget_s(0.5) == pytest.approx(15.0)
    assert dl.grace_s(2.0) == pytest.approx(9.0)
    assert dl.base_budget_s(15.0) > dl.base_budget_s(2.0)


def test_a_wait_extends_the_deadline_past_its_own_end() -> None:
    d = Deadline.derived(100.0, 2.0)
    assert d.end == pytest.approx(130.0)
    d.extend(now=110.0, timeout=60.0)  # a long wait of the test's own: never cut
    assert d.end == pytest.approx(110.0 + 60.0 + 9.0)
    d.extend(now=120.0, timeout=1.0)  # a shorter one later does not shorten it
    assert d.end == pytest.approx(179.0)
    assert "last wait plus 9.0 s grace" in d.describe()


def test_a_longer_node_timeout_widens_the_budget_never_narrows() -> None:
    d = Deadline.derived(0.0, 2.0)
    d.widen(15.0)
    assert d.end == pytest.approx(dl.base_budget_s(15.0))
    assert d.grace_s == pytest.approx(dl.grace_s(15.0))
    d.widen(0.5)
    assert d.end == pytest.approx(dl.base_budget_s(15.0))
    assert "node timeout 15000 ms" in d.describe()


def test_a_fixed_deadline_ignores_waits() -> None:
    d = Deadline.fixed_at(10.0, 5.0)
    d.extend(now=11.0, timeout=100.0)
    d.widen(60.0)
    assert d.end == pytest.approx(15.0)
    assert d.describe() == "5.0 s (fixed)"


def test_last_lines_drops_a_partial_first_line_only_when_enough_are_left() -> None:
    assert last_lines("tail of a line\na\n\nb\n", 2) == ["a", "b"]
    assert last_lines("tail of a line\na\nb\nc\n", 2) == ["b", "c"]
    assert last_lines("whole log\nb\n", 5) == ["whole log", "b"]


def test_the_watchdog_interrupts_a_blocked_main_thread_with_the_states() -> None:
    blocked = threading.Event()  # never set: a call that would block forever
    t0 = time.monotonic()
    dog = Watchdog(Deadline.fixed_at(t0, 0.3), "test_x (call)", lambda: "n0: state T")
    with pytest.raises(DeadlineExceeded) as err, dog:
        blocked.wait(30)
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert "test_x (call) ran past its deadline of 0.3 s (fixed)" in msg
    assert msg.endswith("Node states:\nn0: state T")
    assert wait.on_wait is None  # disarmed: the hook is gone


def test_a_wait_announced_to_the_watchdog_postpones_it() -> None:
    t0 = time.monotonic()
    d = Deadline(t0, base_s=0.2, grace_s=0.3)
    # the wait's own timeout (1 s) plus grace: the watchdog must not fire inside it
    with Watchdog(d, "t", lambda: ""), pytest.raises(NotReadyError):
        wait.wait_for(lambda: (False, "no"), 1.0, "never")
    assert d.end >= t0 + 1.3


def test_a_phase_that_ends_in_time_is_not_interrupted() -> None:
    with Watchdog(Deadline.fixed_at(time.monotonic(), 0.2), "t", lambda: "") as dog:
        pass
    assert dog.message is None and not dog.armed  # its thread is gone: nothing more comes


def test_off_the_main_thread_the_watchdog_stays_unarmed() -> None:
    armed: list[bool] = []

    def run() -> None:
        with Watchdog(Deadline.fixed_at(time.monotonic(), 0.01), "t", lambda: "") as dog:
            armed.append(dog.armed)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert armed == [False]
