"""Nemesis schedules are data: same seed, same schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import nemesis
from harness.errors import UsageError


def test_same_seed_same_schedule() -> None:
    a = nemesis.schedule(42, 10, faults=("kill", "pause", "partition", "latency"), nodes=6)
    b = nemesis.schedule(42, 10, faults=("kill", "pause", "partition", "latency"), nodes=6)
    c = nemesis.schedule(43, 10, faults=("kill", "pause", "partition", "latency"), nodes=6)
    assert a == b != c
    assert len(a) == 10 and {s.fault for s in a} <= set(nemesis.FAULTS)
    assert all(0 <= s.target < 6 for s in a)


def test_targets_follow_masters_without_nodes() -> None:
    steps = nemesis.schedule(1, 5)
    assert all(s.target == -1 and s.fault == "kill" for s in steps)
    assert "a current master" in steps[0].describe()


def test_bounds_are_respected() -> None:
    steps = nemesis.schedule(7, 50, interval_s=(0.1, 0.2), hold_s=(1.0, 2.0))
    assert all(0.1 <= s.wait_before_s <= 0.2 and 1.0 <= s.hold_s <= 2.0 for s in steps)


def test_unknown_fault_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match="unknown nemesis fault 'explode'"):
        nemesis.schedule(1, 3, faults=("explode",))


def test_saved_schedule_round_trips(tmp_path: Path) -> None:
    steps = nemesis.schedule(9, 4, faults=("kill", "latency"), nodes=3)
    path = nemesis.save(steps, tmp_path / "schedule.json", seed=9)
    data = json.loads(path.read_text())
    assert data["seed"] == 9
    assert [nemesis.Step(**s) for s in data["steps"]] == steps
