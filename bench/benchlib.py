"""What the benchmarks share: common options, JSON output, SIGTERM handling."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any


def add_common_args(p: argparse.ArgumentParser) -> None:
    """--impl / --impl-binary (the server benchmarked) and --json."""
    p.add_argument(
        "--impl",
        metavar="NAME",
        help="implementation profile, e.g. redis-7.0, valkey-8.0, redis-6.2",
    )
    p.add_argument("--impl-binary", metavar="PATH", help="server binary to benchmark")
    p.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON")


def write_json(who: str, path: Path, result: dict[str, Any]) -> bool:
    try:
        path.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as exc:
        print(f"{who}: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return False
    print(f"results written to {path}")
    return True


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # run the same cleanup as Ctrl-C


def stop_on_sigterm() -> None:
    """SIGTERM takes the Ctrl-C path, so everything started is stopped either way."""
    signal.signal(signal.SIGTERM, _terminate)
