"""An embedded, asyncio-based server that speaks Toxiproxy's REST API (2.x).

Tests and the harness inject network faults (latency, bandwidth limits, timeouts, resets,
cut connections) between clients and Redis nodes without a Toxiproxy binary: start
``ToxiproxyServer`` in-process, or ``main`` in the foreground, and use any Toxiproxy
client against its URL.
"""

from harness.toxiproxy.api import VERSION
from harness.toxiproxy.server import ToxiproxyServer, main

__all__ = ["VERSION", "ToxiproxyServer", "main"]
