"""harness.wait: polling with a deadline (tiny real timeouts, plus a fake clock)."""

from __future__ import annotations

import itertools
import time

import pytest
import redis

from harness import wait
from harness.errors import HarnessError, NotReadyError
from harness.wait import Hopeless, eventually, not_yet, wait_for

TINY = 0.05
FAST = 0.001


class Probe:
    """Reports ``states`` one per call; ``True`` once ``ready_after`` calls were made."""

    def __init__(self, ready_after: int | None = None, value: object = "ready") -> None:
        self.calls = 0
        self.ready_after = ready_after
        self.value = value

    def __call__(self) -> tuple[bool, object]:
        self.calls += 1
        if self.ready_after is not None and self.calls >= self.ready_after:
            return True, self.value
        return False, f"state #{self.calls}"


# -- wait_for -------------------------------------------------------------------------


def test_wait_for_returns_the_value_at_once() -> None:
    probe = Probe(ready_after=1, value={"cluster_state": "ok"})
    assert wait_for(probe, timeout=TINY, what="cluster ok", interval=FAST) == {
        "cluster_state": "ok"
    }
    assert probe.calls == 1


def test_wait_for_polls_until_ready() -> None:
    probe = Probe(ready_after=4, value=42)
    assert wait_for(probe, timeout=5.0, what="x", interval=FAST) == 42
    assert probe.calls == 4


def test_wait_for_returns_falsy_values() -> None:
    assert wait_for(lambda: (True, None), timeout=TINY, what="x") is None
    assert wait_for(lambda: (True, 0), timeout=TINY, what="x") == 0


def test_wait_for_timeout_reports_last_state() -> None:
    probe = Probe()
    with pytest.raises(NotReadyError) as exc:
        wait_for(probe, timeout=TINY, what="3 masters agree", interval=FAST)
    msg = str(exc.value)
    assert msg.startswith("3 masters agree: not reached within ")
    assert msg.endswith(f"last observed: state #{probe.calls}")
    assert probe.calls >= 2  # it did retry
    assert isinstance(exc.value, HarnessError)


def test_wait_for_timeout_uses_describe() -> None:
    with pytest.raises(NotReadyError, match=r"last observed: 5 slots unassigned$"):
        wait_for(
            lambda: (False, 5),
            timeout=TINY,
            what="coverage",
            interval=FAST,
            describe=lambda n: f"{n} slots unassigned",
        )


def test_wait_for_timeout_reports_last_exception() -> None:
    def probe() -> tuple[bool, str]:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:7000. Connection refused.")

    with pytest.raises(NotReadyError) as exc:
        wait_for(probe, timeout=TINY, what="node up", interval=FAST)
    assert str(exc.value).endswith(
        "last observed: ConnectionError: Error 111 connecting to 127.0.0.1:7000. "
        "Connection refused."
    )


def test_wait_for_exceptions_count_as_not_yet() -> None:
    calls = itertools.count(1)

    def probe() -> tuple[bool, str]:
        n = next(calls)
        if n < 3:
            raise OSError(f"attempt {n}")
        return True, "up"

    assert wait_for(probe, timeout=5.0, what="x", interval=FAST) == "up"


def test_wait_for_zero_timeout_probes_once() -> None:
    probe = Probe()
    with pytest.raises(NotReadyError, match=r"within 0\.0s; last observed: state #1$"):
        wait_for(probe, timeout=0, what="x", interval=FAST)
    assert probe.calls == 1


def test_wait_for_does_not_swallow_base_exceptions() -> None:
    def probe() -> tuple[bool, str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wait_for(probe, timeout=TINY, what="x", interval=FAST)


# -- deterministic timing with a fake clock -------------------------------------------


class FakeClock:
    """Stands in for time.monotonic/time.sleep inside harness.wait: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(wait.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(wait.time, "sleep", fake.sleep)
    return fake


def test_wait_for_polls_at_interval_until_deadline(clock: FakeClock) -> None:
    probe = Probe()
    with pytest.raises(NotReadyError, match=r"within 1\.0s; last observed: state #5$"):
        wait_for(probe, timeout=1.0, what="x", interval=0.25)
    assert probe.calls == 5  # at t = 0, .25, .5, .75, 1.0
    assert clock.sleeps == [0.25] * 4


@pytest.mark.parametrize(
    ("raise_on", "shown"),
    [(1, "last observed: settling"), (0, "last observed: ConnectionError: flaky")],
)
def test_wait_for_reports_only_the_latest_observation(
    clock: FakeClock, raise_on: int, shown: str
) -> None:
    calls = itertools.count()

    def probe() -> tuple[bool, str]:
        if next(calls) % 2 == raise_on:
            raise ConnectionError("flaky")
        return False, "settling"

    with pytest.raises(NotReadyError) as exc:
        wait_for(probe, timeout=1.0, what="x", interval=0.5)  # probes at t = 0, .5, 1.0
    assert str(exc.value).endswith(shown)


def test_eventually_polls_at_interval_until_deadline(clock: FakeClock) -> None:
    calls = itertools.count(1)

    def check() -> None:
        raise AssertionError(f"attempt {next(calls)}")

    with pytest.raises(AssertionError, match=r"^attempt 3$"):
        eventually(check, timeout=1.0, interval=0.5)
    assert clock.sleeps == [0.5, 0.5]


# -- eventually -----------------------------------------------------------------------


def test_eventually_returns_the_checks_value() -> None:
    assert eventually(lambda: "done", timeout=TINY, interval=FAST) == "done"


def test_eventually_retries_assertion_errors() -> None:
    calls = itertools.count(1)

    def check() -> int:
        n = next(calls)
        assert n >= 3, f"only {n}"
        return n

    assert eventually(check, timeout=5.0, interval=FAST) == 3


def test_eventually_reraises_the_last_assertion_error() -> None:
    calls = itertools.count(1)
    last: list[int] = []

    def check() -> None:
        n = next(calls)
        last.append(n)
        raise AssertionError(f"owner of slot 0 is still node-a (attempt {n})")

    with pytest.raises(AssertionError) as exc:
        eventually(check, timeout=TINY, interval=FAST)
    assert str(exc.value) == f"owner of slot 0 is still node-a (attempt {last[-1]})"
    assert len(last) >= 2


def test_eventually_does_not_retry_other_errors() -> None:
    calls = itertools.count(1)

    def check() -> None:
        next(calls)
        raise ValueError("not an assertion")

    with pytest.raises(ValueError, match="not an assertion"):
        eventually(check, timeout=5.0, interval=FAST)
    assert next(calls) == 2  # called exactly once


def test_a_hopeless_probe_ends_the_wait_at_once() -> None:
    calls = itertools.count(1)

    def probe() -> tuple[bool, int]:
        next(calls)
        raise Hopeless("the producer ended")

    with pytest.raises(Hopeless, match="producer ended"):
        wait_for(probe, 30, "something")
    assert next(calls) == 2  # probed once, not until the 30 s deadline


def test_an_error_that_is_not_transient_ends_the_wait_at_once() -> None:
    calls = itertools.count(1)

    def probe() -> tuple[bool, str]:
        n = next(calls)
        if n == 1:
            return False, "forming"
        raise KeyError("node id")  # a bug in the probe: retrying cannot help

    started = time.monotonic()
    with pytest.raises(KeyError) as exc:
        wait_for(probe, timeout=30, what="ready", interval=FAST)
    assert time.monotonic() - started < 5
    assert exc.value.__notes__ == ["while waiting for ready; last observed: forming"]


@pytest.mark.parametrize(
    ("reply", "retried"),
    [
        ("LOADING Redis is loading the dataset in memory", True),
        ("CLUSTERDOWN The cluster is down", True),
        ("TRYAGAIN Multiple keys request during rehashing of slot", True),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", False),
        ("ERR unknown command 'CLUSTER'", False),
    ],
)
def test_error_replies_are_retried_only_when_they_mean_not_yet(reply: str, retried: bool) -> None:
    assert not_yet(redis.exceptions.ResponseError(reply)) is retried


def test_connection_problems_and_not_ready_are_retried() -> None:
    for exc in (
        ConnectionRefusedError(111, "refused"),
        redis.exceptions.ConnectionError("Error 111 connecting"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.BusyLoadingError("loading"),
        NotReadyError("not yet"),
    ):
        assert not_yet(exc), exc
    assert not not_yet(Hopeless("exited"))
