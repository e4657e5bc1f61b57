"""Runs of a soak: ``python -m harness run`` N times, each with its own seed and report
directory, optionally beside a CPU hog; the aggregate is :mod:`harness.soak`'s.

Each run and the hog are started in a session of their own and die with the soak
(``PR_SET_PDEATHSIG``), so Ctrl-C reaches the run exactly once (the soak forwards it;
pytest then tears its clusters down) and not even a SIGKILLed soak leaves a hog behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report import now_iso
from harness.soak import RunInfo, build_soak, render

#: how long a run interrupted by Ctrl-C may take to tear its clusters down before it is
#: killed (the harness's watchdog then removes what it left); not a test verdict
STOP_S = 60.0
#: stress-ng's own --timeout: only a backstop for a hog whose soak vanished without its
#: death signal; the soak stops the hog itself and restarts it if it ended early
HOG_BACKSTOP_S = 3600
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)

Echo = Callable[[str], None]


def derive_seeds(soak_seed: int, repeat: int) -> list[int]:
    """``repeat`` distinct run seeds drawn from the soak's seed: the same soak seed gives
    the same runs."""
    rng = random.Random(soak_seed)
    seeds: list[int] = []
    while len(seeds) < repeat:
        s = rng.randrange(2**63)
        if s not in seeds:
            seeds.append(s)
    return seeds


def hog_tool() -> str:
    """stress-ng's path; a usage error that says how to install it when it is missing."""
    tool = shutil.which("stress-ng")
    if tool is None:
        raise UsageError(
            "--cpu-hog needs stress-ng: apt-get install stress-ng "
            "(scripts/setup-system.sh installs it)"
        )
    return tool


def _die_with_parent(sig: int) -> Callable[[], None]:
    parent = os.getpid()

    def preexec() -> None:
        _LIBC.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the soak died before prctl took hold
            os._exit(1)

    return preexec


def _stop_group(proc: subprocess.Popen[bytes], first: int, grace_s: float) -> None:
    """Signal ``proc``'s process group with ``first``; SIGKILL it after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, first)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class CpuHog:
    """``stress-ng --cpu N`` beside the runs.

    stress-ng and nothing else: a soak under load is compared across machines and days,
    so the load must be the same program everywhere (python busy loops would differ with
    the interpreter and hold the GIL of nobody we test). A missing stress-ng is a usage
    error that says how to install it.
    """

    def __init__(self, workers: int, log: Path) -> None:
        self.workers = workers
        self.argv = [hog_tool(), "--cpu", str(workers), "--timeout", f"{HOG_BACKSTOP_S}s"]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def ensure(self, echo: Echo) -> None:
        """Running: started, or restarted if it ended (its backstop timeout passed)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if self.proc is not None:
            echo(f"soak: cpu hog ended (exit {self.proc.returncode}); restarting it")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        self.starts += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _stop_group(self.proc, signal.SIGTERM, 10.0)

    def describe(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "tool": "stress-ng",
            "command": self.argv,
            "pid": None if self.proc is None else self.proc.pid,
            "starts": self.starts,
            "log": str(self.log),
        }


@contextlib.contextmanager
def cpu_hog(workers: int, log: Path) -> Iterator[CpuHog | None]:
    hog = CpuHog(workers, log) if workers else None
    try:
        yield hog
    finally:
        if hog is not None:
            hog.stop()


def run_once(argv: Sequence[str], output: Path) -> int:
    """One ``python -m harness run``; on Ctrl-C, forward it, let pytest tear down (bounded
    by :data:`STOP_S`), and re-raise."""
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(signal.SIGINT),
        )
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop_group(proc, signal.SIGINT, STOP_S)
        raise
    finally:
        if proc.poll() is None:  # a second Ctrl-C while it tore down
            _stop_group(proc, signal.SIGKILL, STOP_S)


def _read_summary(report_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((report_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _progress(run: RunInfo, repeat: int) -> str:
    totals = run.summary.get("totals", {}) if run.summary else {}
    said = ", ".join(f"{n} {o}" for o, n in sorted(totals.items())) or "no summary"
    load = "" if run.load_1m is None else f", load {run.load_1m:.1f}"
    return (
        f"run {run.index}/{repeat} seed {run.seed}: {said}, exit {run.exit_status} "
        f"({run.duration_s:.1f} s{load})"
    )


def soak(
    repeat: int,
    run_args: Sequence[str],
    pytest_args: Sequence[str],
    report_dir: Path,
    soak_seed: int | None = None,
    hog_workers: int = 0,
    echo: Echo = print,
) -> int:
    """Run the soak, write ``soak.json`` and print the report; the exit status of
    :func:`harness.soak.exit_status`."""
    soak_seed = secrets.randbelow(2**63) if soak_seed is None else soak_seed
    seeds = derive_seeds(soak_seed, repeat)
    report_dir.mkdir(parents=True, exist_ok=True)
    echo(f"soak: {repeat} runs, soak seed {soak_seed} (--seed {soak_seed} replays them)")
    runs: list[RunInfo] = []
    interrupted = False
    started = now_iso()
    hog_info: dict[str, Any] | None = None
    try:
        with cpu_hog(hog_workers, report_dir / "cpu-hog.txt") as hog:
            for index, seed in enumerate(seeds, 1):
                run_dir = report_dir / f"run-{index}"
                shutil.rmtree(run_dir, ignore_errors=True)  # a summary of an older soak
                run_dir.mkdir(parents=True)
                argv = [*run_args, "--seed", str(seed), "--report-dir", str(run_dir)]
                argv += ["--", *pytest_args] if pytest_args else []
                if hog is not None:
                    hog.ensure(echo)
                    hog_info = hog.describe()
                t0 = time.monotonic()
                code = run_once(argv, run_dir / "output.txt")
                run = RunInfo(
                    index,
                    seed,
                    code,
                    time.monotonic() - t0,
                    str(run_dir),
                    _read_summary(run_dir),
                    os.getloadavg()[0],
                )
                runs.append(run)
                echo(_progress(run, repeat))
                if not run.counts:
                    _echo_tail(run_dir / "output.txt", echo)
                    break
    except KeyboardInterrupt:
        interrupted = True
        echo("soak: interrupted; the report covers the runs that finished")
    meta = {
        "started": started,
        "finished": now_iso(),
        "repeat": repeat,
        "soak_seed": soak_seed,
        "cpu_hog": hog_info,
    }
    result = build_soak(meta, runs, run_args, pytest_args, interrupted)
    (report_dir / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    for line in render(result):
        echo(line)
    echo(f"soak: report written to {report_dir / 'soak.json'}")
    return int(result["verdict"]["exit_status"])


def _echo_tail(output: Path, echo: Echo, lines: int = 15) -> None:
    """The end of a run that ended the soak: usually one error line saying why."""
    try:
        text = output.read_text(errors="replace").splitlines()
    except OSError:
        return
    for line in text[-lines:]:
        echo(f"  | {line}")
