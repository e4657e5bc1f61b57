"""What the benchmarks share: common options, JSON output, SIGTERM handling, running a
reference tool that never outlives the benchmark."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from harness.errors import NotReadyError
from harness.runs import Run


def add_common_args(p: argparse.ArgumentParser) -> None:
    """--impl / --impl-binary (the server benchmarked) and --json."""
    p.add_argument(
        "--impl",
        metavar="NAME",
        help="implementation profile, e.g. redis-7.0, valkey-8.0, redis-6.2",
    )
    p.add_argument("--impl-binary", metavar="PATH", help="server binary to benchmark")
    p.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON")


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``"3x0,10x2"`` -> ``[(3, 0), (10, 2)]`` (masters x replicas per master); a bad item
    raises ValueError naming it."""
    shapes = []
    for item in text.split(","):
        masters, sep, replicas = item.strip().lower().partition("x")
        if not sep or not masters.isdigit() or not replicas.isdigit() or int(masters) < 1:
            raise ValueError(f"bad shape {item.strip()!r}: use MASTERSxREPLICAS, e.g. 10x2")
        shapes.append((int(masters), int(replicas)))
    return shapes


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


def run_owned(
    cmd: list[str],
    run: Run,
    timeout: float,
    *,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[int, str]:
    """Run a reference tool in its own session, registered with ``run`` (so the watchdog
    and sweeps know it), killed on any way out; return its exit code and output."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
        env=run.env(),
        preexec_fn=preexec_fn,
    )
    run.register(proc.pid)
    try:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise NotReadyError(f"`{' '.join(cmd)}` did not finish in {timeout:.0f}s") from exc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        run.unregister(proc.pid)
    return proc.returncode, out.decode(errors="replace")
