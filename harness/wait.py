"""Polling with a deadline: the only way tests and the harness wait for state.

Nothing sleeps to synchronise. A probe is called until it reports success; on timeout
the error carries the last observed state, so a failure says what the cluster looked like
rather than just "timed out".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import HarnessError, NotReadyError

T = TypeVar("T")


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

    Exceptions from the probe count as "not yet" and are reported if the deadline passes,
    except :class:`Hopeless`, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last: str = "never probed"
    while True:
        try:
            done, value = probe()
            if done:
                return value
            last = describe(value)
        except Hopeless:
            raise
        except Exception as exc:  # any probe failure means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise NotReadyError(f"{what}: not reached within {timeout:.1f}s; last observed: {last}")
        time.sleep(interval)


def eventually(check: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Retry ``check`` until it stops raising ``AssertionError``; re-raise the last one at
    the deadline (pytest then shows the real assertion and its values)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)
