"""Temporary build directories that are always removed, even after a killed build.

A build directory holds a root filesystem while it is made (debootstrap mounts /proc and
/dev inside it and may leave daemons running in the chroot) and the tar imported from it.
:func:`workdir` removes it afterwards; one whose owner process died is removed by the next
build, but only once nothing runs and nothing is mounted in it any more.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError
from harness.runs import proc_start_time

WORKDIR_PREFIX = "redis-cluster-harness-build-"


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _processes_using(work: Path) -> list[int]:
    """Processes inside ``work``: with their root (a daemon a maintainer script started in
    the chroot) or working directory there, or naming it on their command line (a
    debootstrap whose harness process was killed)."""
    prefix = str(work.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            places = [os.readlink(entry / "root"), os.readlink(entry / "cwd")]
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(p == prefix or p.startswith(prefix + "/") for p in places) or any(
            arg.startswith(prefix.encode()) for arg in cmdline
        ):
            pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary build directory, always removed. One that a killed build left behind
    (its ``owner`` process is gone) is removed by the next build."""
    _sweep_workdirs()
    work = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    try:
        (work / "owner").write_text(f"{os.getpid()} {proc_start_time(os.getpid())}")
        yield work
    finally:
        _remove_workdir(work)


def _sweep_workdirs() -> None:
    for work in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        gone = False
        try:
            pid, _, started = (work / "owner").read_text().partition(" ")
            gone = proc_start_time(int(pid)) != started.strip()
        except (OSError, ValueError):  # no owner yet: a build starting right now, or debris
            with contextlib.suppress(OSError):
                gone = time.time() - work.stat().st_mtime > 60
        if gone:
            with contextlib.suppress(HarnessError, OSError):
                _remove_workdir(work)


def _remove_workdir(work: Path) -> None:
    """Delete a build directory, but only once no process and no mount is left in it:
    removing a tree with /dev still bind-mounted (debootstrap does that in containers)
    would delete the host's device nodes."""
    if work.exists():
        evacuate(work)
        shutil.rmtree(work)


def evacuate(work: Path) -> None:
    """Kill the processes in ``work`` and unmount what is mounted under it."""
    for _ in range(50):  # again while a dying parent may still have forked a child
        pids = _processes_using(work)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    for point in sorted(_mounts_under(work), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    left = _mounts_under(work)
    if left:
        raise HarnessError(f"cannot unmount {left[0]}; unmount it and remove {work} by hand")
