"""Event loops for the harness's own asyncio code (proxy server, workloads).

uvloop moves bytes and runs callbacks several times faster than the standard loop; it is
used when installed and asked for ("auto" or "uvloop"), never required.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Literal, cast

LoopKind = Literal["auto", "asyncio", "uvloop"]


def loop_factory(kind: LoopKind) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For ``asyncio.Runner(loop_factory=...)``: None means the standard loop."""
    if kind == "asyncio":
        return None
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        if kind == "uvloop":
            raise
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], module.new_event_loop)
