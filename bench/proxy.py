"""Proxy overhead benchmark: redis-benchmark direct against a local redis-server and
through the embedded Toxiproxy-compatible server (a proxy with no toxics), same run,
alternating order.

Two measurements per repetition:

* **throughput**: ``redis-benchmark -t ping,set,get -n N -q`` (50 clients): requests per
  second through the proxy as a fraction of direct;
* **latency**: the same with one client (``-c 1``), so no queueing hides the cost of a hop:
  the p50 and p99 the proxy adds to each request/response round trip.

Medians over the repetitions are printed (and written as JSON with ``--json``). The proxy
runs on its own thread of this process, as it does in tests.

Usage: ``.venv/bin/python bench/proxy.py [--reps 3] [--requests 100000]
[--loop auto|asyncio|uvloop] [--json PATH]``. Exit status: 0 done, 2 redis-server or
redis-benchmark missing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import cast

from harness.loops import LoopKind, loop_factory
from harness.ports import PortLease
from harness.toxiproxy import ToxiproxyServer
from harness.wait import wait_for

TESTS = ("PING_INLINE", "PING_MBULK", "SET", "GET")


def redis_benchmark(port: int, requests: int, clients: int) -> dict[str, dict[str, float]]:
    """Per test: rps, p50 and p99 in ms (redis-benchmark's CSV)."""
    out = subprocess.run(
        [
            *("redis-benchmark", "-p", str(port), "-t", "ping,set,get", "-n", str(requests)),
            *("-c", str(clients), "--csv", "--precision", "3"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    rows = csv.DictReader(io.StringIO(out))
    return {
        row["test"]: {
            "rps": float(row["rps"]),
            "p50": float(row["p50_latency_ms"]),
            "p99": float(row["p99_latency_ms"]),
        }
        for row in rows
    }


def create_proxy(api: str, upstream: int) -> int:
    body = json.dumps(
        {"name": "bench", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream}"}
    )
    request = urllib.request.Request(f"{api}/proxies", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response)["listen"].rsplit(":", 1)[1])


def ping(port: int) -> tuple[bool, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(64)
    return reply == b"+PONG\r\n", repr(reply)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--latency-requests", type=int, default=20_000)
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"bench/proxy.py: {tool} is not on PATH", file=sys.stderr)
            return 2

    lease = PortLease()
    (port,) = lease.claim(1)
    server = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--daemonize", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    toxiproxy = ToxiproxyServer(loop=cast(LoopKind, args.loop))
    try:
        wait_for(lambda: ping(port), 10, "redis-server answers PING")
        toxiproxy.start()
        proxy_port = create_proxy(toxiproxy.url, port)
        wait_for(lambda: ping(proxy_port), 10, "proxy answers PING")
        samples: dict[str, list[dict[str, dict[str, float]]]] = {
            f"{kind}_{target}": [] for kind in ("load", "latency") for target in ("direct", "proxy")
        }
        for rep in range(args.reps):
            order = [("direct", port), ("proxy", proxy_port)]
            if rep % 2:
                order.reverse()
            for target, p in order:
                samples[f"load_{target}"].append(redis_benchmark(p, args.requests, 50))
                samples[f"latency_{target}"].append(redis_benchmark(p, args.latency_requests, 1))
    finally:
        toxiproxy.stop()
        server.terminate()
        server.wait(10)
        lease.release()

    def median(key: str, test: str, field: str) -> float:
        return statistics.median(s[test][field] for s in samples[key])

    result: dict[str, dict[str, float]] = {}
    actual = "uvloop" if loop_factory(cast(LoopKind, args.loop)) else "asyncio"
    print(f"median of {args.reps}; loop={args.loop} ({actual})")
    print(
        f"{'test':12} {'direct rps':>11} {'proxy rps':>10} {'ratio':>6}   {'added p50 ms':>12} {'added p99 ms':>12}"
    )
    for test in TESTS:
        direct, proxied = median("load_direct", test, "rps"), median("load_proxy", test, "rps")
        row = {
            "direct_rps": direct,
            "proxy_rps": proxied,
            "ratio": proxied / direct,
            "added_p50_ms": median("latency_proxy", test, "p50")
            - median("latency_direct", test, "p50"),
            "added_p99_ms": median("latency_proxy", test, "p99")
            - median("latency_direct", test, "p99"),
            "load_added_p50_ms": median("load_proxy", test, "p50")
            - median("load_direct", test, "p50"),
        }
        result[test] = row
        print(
            f"{test:12} {direct:11.0f} {proxied:10.0f} {row['ratio']:6.2f}   "
            f"{row['added_p50_ms']:12.3f} {row['added_p99_ms']:12.3f}"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"loop": actual, "reps": args.reps, "tests": result}, indent=2)
        )
    return 0


if __name__ == "__main__":
    start = time.monotonic()
    status = main()
    print(f"({time.monotonic() - start:.0f} s)", file=sys.stderr)
    sys.exit(status)
