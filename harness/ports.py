"""Port allocation that is safe for parallel runs.

Ports are claimed with an ``flock`` on a per-port file that the owning process holds
until it exits (the kernel drops the lock even on SIGKILL), so two harness processes can
never pick the same port, and there is no probe-then-bind race between them. Client ports
live in 12000–21999 so that bus ports (+10000) stay below the ephemeral range
(32768–60999) where the kernel hands out outgoing connections' source ports.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
from pathlib import Path

from harness.errors import HarnessError
from harness.runs import state_dir

LOW, HIGH = 12000, 22000  # client ports; the bus port is port + 10000
BUS_OFFSET = 10000


def _lock_dir() -> Path:
    d = state_dir() / "ports"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Servers listen with SO_REUSEADDR: connections of a previous node lingering in
    # TIME_WAIT must not make the port look busy.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class PortLease:
    """Ports held by this process; released when closed or when the process dies."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}

    def _try(self, port: int) -> bool:
        path = _lock_dir() / f"{port}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        # Locked by us now; a foreign (non-harness) listener may still hold the port.
        if not (_bindable(port) and _bindable(port + BUS_OFFSET)):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return False
        self._fds[port] = fd
        return True

    def claim(self, count: int, rng: random.Random | None = None) -> list[int]:
        """Claim ``count`` free client ports (each with a free bus port)."""
        rng = rng or random.Random()
        start = rng.randrange(LOW, HIGH)
        got: list[int] = []
        for i in range(HIGH - LOW):
            port = LOW + (start - LOW + i) % (HIGH - LOW)
            if port in self._fds:
                continue
            if self._try(port):
                got.append(port)
                if len(got) == count:
                    return got
        self.release(got)
        raise HarnessError(
            f"no {count} free ports left in {LOW}-{HIGH - 1}; stop other clusters and retry"
        )

    def claim_exact(self, ports: list[int]) -> list[int]:
        """Claim the given ports (``harness up --port``) or fail with one clear line."""
        for p in ports:
            if not 1024 <= p <= 65535 - BUS_OFFSET:
                self.release([q for q in ports if q in self._fds])
                raise HarnessError(
                    f"port {p} is out of range: use 1024..{65535 - BUS_OFFSET} (bus port is +{BUS_OFFSET})"
                )
            if not self._try(p):
                self.release([q for q in ports if q in self._fds])
                raise HarnessError(
                    f"port {p} or its bus port {p + BUS_OFFSET} is busy; choose another --port or stop what uses it"
                )
        return list(ports)

    def release(self, ports: list[int] | None = None) -> None:
        for p in list(self._fds if ports is None else ports):
            fd = self._fds.pop(p, None)
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
