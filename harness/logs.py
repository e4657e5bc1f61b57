"""Server log lines with their timestamps, to cross-check what the harness observed
against what the servers say happened (e.g. "Failover election won")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# "12345:S 27 Nov 2026 06:14:04.685 # Failover election won for epoch 7."
_LINE = re.compile(r"^\d+:[A-Z] (\d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3}) [#*.-] (.*)$")


@dataclass(frozen=True)
class LogLine:
    wall_ns: int
    text: str


def parse(log: str) -> list[LogLine]:
    """Timestamped lines of a Redis/Valkey log (local time, millisecond precision)."""
    out = []
    for raw in log.splitlines():
        m = _LINE.match(raw.strip())
        if m:
            when = datetime.strptime(m.group(1), "%d %b %Y %H:%M:%S.%f")
            out.append(LogLine(int(when.timestamp() * 1e9), m.group(2)))
    return out


def first(log: str, pattern: str, after_ns: int = 0) -> LogLine | None:
    """The first line matching ``pattern`` (a regex) at or after ``after_ns`` (wall)."""
    rx = re.compile(pattern)
    for line in parse(log):
        if line.wall_ns >= after_ns and rx.search(line.text):
            return line
    return None
