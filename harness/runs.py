"""Run ownership and leak-proof cleanup of server processes.

Each harness process owns one *run*: a directory ``<state>/runs/<run-id>/`` holding node
data, logs, and a ``pids/`` marker per started process. Three layers make sure nothing
survives:

1. normal teardown (fixtures, ``Cluster.close``) stops what it started;
2. a watchdog process, started with the run, holds the read end of a pipe whose write
   end only the owner has. When the owner dies for any reason, SIGKILL included, the
   pipe reports EOF and the watchdog kills every process of the run and removes its
   directory;
3. at start-up every run sweeps runs whose owner is dead (in case the watchdog itself was
   killed), checking a pid's start time against its marker before signalling it.

Every process of a run runs with its working directory inside the run directory, which is
how tests (and people) can find one: ``readlink /proc/<pid>/cwd``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

RUN_ENV = "HARNESS_RUN_ID"
CLEAN_EXIT = b"x"
CLEANUPS = "cleanups"  # in the run directory: "<module>:<function> <item>" per line


def state_dir() -> Path:
    return Path(os.environ.get("HARNESS_STATE_DIR", f"/tmp/redis-cluster-harness-{os.getuid()}"))


def proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str | None) -> bool:
    now = proc_start_time(pid)
    return now is not None and (start_time is None or now == start_time)


def cleanup_run(run_dir: Path) -> None:
    """Kill the run's processes, then undo what its backends created outside the host's
    process table (namespaces, containers, networks) with the cleanups noted in the run
    directory (:meth:`Run.note`), in the order they were noted."""
    kill_run_processes(run_dir)
    try:
        noted = (run_dir / CLEANUPS).read_text().splitlines()
    except OSError:
        return
    for line in dict.fromkeys(noted):
        ref, _, item = line.partition(" ")
        try:
            resolve_cleanup(ref)(item)
        except Exception as exc:  # one failed cleanup must not keep the others from running
            print(f"harness: cleanup {line!r} of {run_dir} failed: {exc}", file=sys.stderr)


def resolve_cleanup(ref: str) -> Callable[[str], object]:
    """The function a cleanup reference ``harness.module:function`` names. Resolved only
    when a run is cleaned up, so this module imports no backend (and none imports it back)."""
    module, _, name = ref.partition(":")
    if not module.startswith("harness.") or not name.isidentifier():
        raise ValueError(f"not a cleanup reference (harness.module:function): {ref!r}")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise ValueError(f"{ref} is not a function")
    return cast("Callable[[str], object]", fn)


def kill_run_processes(run_dir: Path) -> list[int]:
    """SIGKILL the process group of every process registered in ``run_dir``.

    A marker holds the process's start time, so a pid the kernel has since reused for
    something else is never signalled. (The environment cannot serve as the mark: servers
    overwrite it when they set their process title.)
    """
    killed: list[int] = []
    pids_dir = run_dir / "pids"
    if not pids_dir.is_dir():
        return killed
    for marker in pids_dir.iterdir():
        try:
            pid = int(marker.name)
            started = marker.read_text().strip()
        except (ValueError, OSError):
            continue
        if started and proc_start_time(pid) == started:
            _kill_group(pid)
            killed.append(pid)
    # A process started but not yet registered when the owner died still works inside the
    # run directory.
    for pid in _pids_working_under(run_dir):
        _kill_group(pid)
        killed.append(pid)
    return killed


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGCONT)  # a SIGSTOPped group must be able to die
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)  # not a group leader


def _pids_working_under(root: Path) -> list[int]:
    prefix = str(root)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.removesuffix(" (deleted)") == prefix or cwd.startswith(prefix + "/"):
            found.append(int(entry.name))
    return found


def sweep_dead_runs(base: Path | None = None) -> list[str]:
    """Remove runs whose owner process is gone; returns their ids."""
    runs = (base or state_dir()) / "runs"
    swept: list[str] = []
    if not runs.is_dir():
        return swept
    for run_dir in runs.iterdir():
        owner = run_dir / "owner"
        try:
            pid_s, _, start = owner.read_text().partition(" ")
            alive = _alive(int(pid_s), start.strip() or None)
        except (OSError, ValueError):
            # No owner file: a run being created right now, or debris. Leave young ones.
            alive = time.time() - run_dir.stat().st_mtime < 60
        if not alive:
            cleanup_run(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
            swept.append(run_dir.name)
    return swept


class Run:
    """This process's run directory, registry of started processes, and watchdog."""

    _current: Run | None = None
    _lock = threading.Lock()

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        sweep_dead_runs()
        self.id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.dir = state_dir() / "runs" / self.id
        (self.dir / "pids").mkdir(parents=True)
        pid = os.getpid()
        (self.dir / "owner").write_text(f"{pid} {proc_start_time(pid)}")
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._pipe_w: int | None = None
        self._closed = False
        self._start_watchdog()
        atexit.register(self.close)

    @classmethod
    def current(cls) -> Run:
        """The run of this process, created on first use."""
        with cls._lock:
            if cls._current is None or cls._current._closed:
                cls._current = Run()
            return cls._current

    def _start_watchdog(self) -> None:
        r, w = os.pipe()
        os.set_inheritable(r, True)
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "harness.runs", "--watch", str(self.dir), str(r)],
            pass_fds=(r,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C to our group must not kill it before cleanup
            env={**os.environ, RUN_ENV: self.id},
        )
        os.close(r)
        self._pipe_w = w  # not inheritable (PEP 446): servers never hold it

    def env(self) -> dict[str, str]:
        """Environment for processes of this run (marks them for the sweep)."""
        return {**os.environ, RUN_ENV: self.id}

    def note(self, cleanup: str, item: str) -> None:
        """Record that ``item`` (a namespace name, a run id) is undone by the function
        ``cleanup`` names (``"harness.netns:delete_namespace"``), so the watchdog and the
        sweep call ``function(item)`` too, even when this process dies."""
        resolve_cleanup(cleanup)  # a typo fails now, not in the watchdog
        if not item or any(c.isspace() for c in item):
            raise ValueError(f"cleanup item must be one word: {item!r}")
        with (self.dir / CLEANUPS).open("a") as f:
            f.write(f"{cleanup} {item}\n")

    def register(self, pid: int) -> None:
        """Record a started process (the leader of its own process group)."""
        (self.dir / "pids" / str(pid)).write_text(proc_start_time(pid) or "")

    def unregister(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pids" / str(pid)).unlink()

    def close(self) -> None:
        """Kill whatever is still registered, stop the watchdog, remove the directory."""
        if self._closed:
            return
        self._closed = True
        cleanup_run(self.dir)
        if self._pipe_w is not None:
            with contextlib.suppress(OSError):
                os.write(self._pipe_w, CLEAN_EXIT)  # tells the watchdog the owner is tidying up
            os.close(self._pipe_w)
            self._pipe_w = None
        if self._watchdog is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=5)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def _watch(run_dir: Path, fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    clean = False
    while True:
        try:
            data = os.read(fd, 4096)
        except InterruptedError:
            continue
        except OSError:
            break
        if not data:
            break
        clean = clean or CLEAN_EXIT in data
    cleanup_run(run_dir)
    if not clean:  # the owner died without closing: nobody else will remove the directory
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--watch":
        _watch(Path(sys.argv[2]), int(sys.argv[3]))
