"""Polling with a deadline: the only way tests and the harness wait for state.

Nothing sleeps to synchronise. A probe is called until it reports success; on timeout
the error carries the last observed state, so a failure says what the cluster looked like
rather than just "timed out". Only errors that mean "not yet" are retried (a refused or
timed-out connection, LOADING, CLUSTERDOWN, TRYAGAIN...: :func:`not_yet`); anything else,
and :class:`Hopeless`, ends the wait at once, as testcontainers' ``waiting_utils`` does
with its transient exceptions: a binary that exited is not retried for the whole timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

from harness.errors import HarnessError, NotReadyError

T = TypeVar("T")

#: exception types that mean "not yet": the node is starting, loading, unreachable for
#: now, or the cluster is still converging
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out (builtin TimeoutError and ConnectionError too)
    NotReadyError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterError,  # includes CLUSTERDOWN and "slot not covered"
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.AskError,
    redis.exceptions.MovedError,
)
#: error reply codes that mean "not yet" when a client reports them as a plain error
TRANSIENT_CODES = ("LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "MOVED", "ASK", "BUSY")


def not_yet(exc: BaseException) -> bool:
    """Does ``exc`` mean the state may still come (retry), rather than that the probe is
    wrong or the state can never come (stop)?"""
    if isinstance(exc, Hopeless | redis.exceptions.AuthenticationError):
        return False  # refused credentials (a subclass of ConnectionError) never heal
    if isinstance(exc, TRANSIENT):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):
        code = str(exc).split(" ", 1)[0].upper()
        return code in TRANSIENT_CODES
    return False


#: set by the per-test watchdog (:mod:`harness.deadline`): told the timeout of every wait
#: as it begins, so a test that waits long by its own word is never cut short
on_wait: Callable[[float], None] | None = None


def announce(timeout: float) -> None:
    """Tell the watchdog, if one runs, that the caller may block ``timeout`` s from now."""
    hook = on_wait
    if hook is not None:
        hook(timeout)


class Hopeless(HarnessError):
    """Raised by a probe when the state can no longer come (the process that would bring
    it ended): :func:`wait_for` passes it on at once instead of waiting out the deadline."""


def wait_for(
    probe: Callable[[], tuple[bool, T]],
    timeout: float,
    what: str,
    interval: float = 0.02,
    describe: Callable[[T], str] = str,
) -> T:
    """Call ``probe`` until it returns ``(True, value)``; return that value.

    Exceptions that mean "not yet" (:func:`not_yet`) are retried and reported if the
    deadline passes; any other exception ends the wait at once, with a note of what was
    being waited for and the last observed state.
    """
    announce(timeout)
    deadline = time.monotonic() + timeout
    last: str = "never probed"
    while True:
        try:
            done, value = probe()
            if done:
                return value
            last = describe(value)
        except Exception as exc:
            if not not_yet(exc):
                exc.add_note(f"while waiting for {what}; last observed: {last}")
                raise
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise NotReadyError(f"{what}: not reached within {timeout:.1f}s; last observed: {last}")
        time.sleep(interval)


def eventually(check: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Retry ``check`` until it stops raising ``AssertionError``; re-raise the last one at
    the deadline (pytest then shows the real assertion and its values)."""
    announce(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)
